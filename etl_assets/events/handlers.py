"""Event handlers: the `Event` they receive and the registry of handlers per topic.

Handlers are Python functions registered per topic (or for every topic, `ALL_TOPICS`) by
name; the store (`events.store.dispatch_event`) runs them after an event commits.

    @register_handler("transaction.parsed")
    def refresh_forecasts(event: Event) -> None: ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ALL_TOPICS = "*"  # register a handler for this topic to receive every event


@dataclass(frozen=True)
class Event:
    """One recorded event, as handlers receive it."""

    id: int
    topic: str
    payload: dict[str, Any]
    job_id: str | None
    created_at: dt.datetime


Handler = Callable[[Event], None]
_HANDLERS: dict[str, dict[str, Handler]] = {}


def register_handler(topic: str, handler: Handler | None = None, *, name: str | None = None) -> Any:
    """Run `handler(event)` for every event of `topic`; usable as a decorator.

    The handler's name (default: module.qualname) identifies its runs: registering the same
    name again replaces the handler.
    """

    def register(function: Handler) -> Handler:
        key = name or f"{function.__module__}.{function.__qualname__}"
        _HANDLERS.setdefault(topic, {})[key] = function
        return function

    return register(handler) if handler is not None else register


def unregister_handler(topic: str, name: str) -> None:
    """Stop running the handler registered as `name` for `topic`."""
    _HANDLERS.get(topic, {}).pop(name, None)


def handlers_for(topic: str) -> dict[str, Handler]:
    """The handlers registered for `topic` (and for every topic, ALL_TOPICS), by name.

    Only those registered so far: the store registers the platform's own handlers before it
    dispatches (`events.store.dispatch_event`).
    """
    return {**_HANDLERS.get(ALL_TOPICS, {}), **_HANDLERS.get(topic, {})}
