"""Events: `publish_event(topic, payload)`, handlers per topic, every event and outcome kept.

An event is a row in `events` (an outbox). Code that changes the warehouse records its event
in the same transaction as the change (`record_event`), so a committed load always has its
event and a rolled-back one never does. Handlers run *after* the commit (`dispatch_event`):
each handler's outcome (`ok`, or `failed` with its error) is a row in `event_handler_runs`,
a failing handler never undoes the change, and `retry_events` runs failed (or never-run)
handlers again; the reaper runs those of events a dead process left `pending`
(`retry_abandoned_events`). No message queue: handlers are Python functions registered per topic
(`events.handlers`); the platform's own (`events.platform_handlers`) are registered once per
process before the first dispatch.

    @register_handler("transaction.parsed")
    def refresh_forecasts(event: Event) -> None: ...

    publish_event("forecast.requested", {"products": ["SKU-0001"]})
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.config import Settings
from etl_assets.db import JSONType, UTCDateTime, metadata, utcnow
from etl_assets.events.handlers import (
    ALL_TOPICS,
    Event,
    Handler,
    handlers_for,
    register_handler,
    unregister_handler,
)
from etl_assets.events.platform_handlers import register_platform_handlers

# The handler registry lives in events.handlers; its names are importable from here too.
__all__ = [
    "ALL_TOPICS",
    "ERROR_CHARS",
    "EVENT_STATUSES",
    "RUN_STATUSES",
    "TRANSACTION_PARSED",
    "Event",
    "Handler",
    "dispatch_event",
    "event_handler_runs",
    "events",
    "handlers_for",
    "list_events",
    "publish_event",
    "record_event",
    "register_handler",
    "retry_abandoned_events",
    "retry_events",
    "summary",
    "unregister_handler",
]

log = logging.getLogger(__name__)

TRANSACTION_PARSED = "transaction.parsed"
EVENT_STATUSES = ("pending", "done", "failed")  # pending: handlers not run yet
RUN_STATUSES = ("ok", "failed")
ERROR_CHARS = 500

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("job_id", sa.String(32)),  # the job the event is about, if any
    sa.Column("dataset", sa.String(64)),  # that job's dataset: downstream tables pick theirs
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("dispatched_at", UTCDateTime),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    sa.Index("ix_events_topic_id", "topic", "id"),
    sa.Index("ix_events_status", "status"),
    sa.Index("ix_events_job_id", "job_id"),
    sa.Index("ix_events_topic_dataset_id", "topic", "dataset", "id"),
)

event_handler_runs = sa.Table(
    "event_handler_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "event_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("handler", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("event_id", "handler"),
    sa.CheckConstraint("status IN ('ok', 'failed')", name="status"),
)


_platform_handlers_registered = False


def _ensure_platform_handlers() -> None:
    """Register the platform's own handlers (from the settings) once per process, so a run,
    the CLI and a retry all run the same handlers."""
    global _platform_handlers_registered
    if _platform_handlers_registered:
        return
    _platform_handlers_registered = True
    register_platform_handlers(Settings.from_env())


def record_event(
    conn: sa.Connection,
    topic: str,
    payload: Mapping[str, Any],
    *,
    job_id: str | None = None,
    dataset: str | None = None,
) -> int:
    """Record an event in the caller's transaction (it commits or rolls back with the change
    it describes); returns its id. Run its handlers with `dispatch_event` after the commit."""
    values = dict(topic=topic, job_id=job_id, dataset=dataset, payload=dict(payload))
    stmt = events.insert().values(**values, created_at=utcnow()).returning(events.c.id)
    event_id = int(conn.execute(stmt).scalar_one())
    log.info(f"Event published: id={event_id} topic={topic} payload={summary(payload)}")
    return event_id


def publish_event(
    topic: str,
    payload: Mapping[str, Any],
    *,
    job_id: str | None = None,
    engine: Engine | None = None,
) -> int:
    """Record an event and run its handlers; returns the event id.

    `engine` defaults to the configured database (DATABASE_URL). A handler's failure is
    recorded, never raised.
    """
    engine = engine or _default_engine()
    with engine.begin() as conn:
        event_id = record_event(conn, topic, payload, job_id=job_id)
    dispatch_event(engine, event_id)
    return event_id


def dispatch_event(engine: Engine, event_id: int) -> str:
    """Run the event's handlers that have not succeeded yet; returns the event's new status.

    Each outcome commits on its own, so one handler's failure neither hides nor undoes
    another's success.
    """
    with engine.connect() as conn:
        event = _event(conn, event_id)
        runs = sa.select(event_handler_runs.c.handler, event_handler_runs.c.status).where(
            event_handler_runs.c.event_id == event_id
        )
        outcomes: dict[str, str] = {row.handler: row.status for row in conn.execute(runs)}
    _ensure_platform_handlers()
    handlers = handlers_for(event.topic)
    failed = 0
    for name, handler in handlers.items():
        if outcomes.get(name) == "ok":
            continue
        error = _run(handler, name, event)
        failed += error is not None
        _record_run(engine, event_id, name, error)
    # A handler that failed before but is not registered in this process stays failed.
    missing = [n for n, status in outcomes.items() if status == "failed" and n not in handlers]
    if missing:
        log.warning(f"Event {event_id}: handlers {missing} are not registered here; not retried")
    status = "failed" if failed or missing else "done"
    with engine.begin() as conn:
        conn.execute(
            events.update()
            .where(events.c.id == event_id)
            .values(status=status, dispatched_at=utcnow())
        )
    return status


def retry_events(
    engine: Engine, event_ids: Iterable[int] | None = None, *, topic: str | None = None
) -> dict[int, str]:
    """Run the failed (or never-run) handlers of the given events, or of every event not
    `done`; returns each event's new status."""
    stmt = sa.select(events.c.id).order_by(events.c.id)
    if event_ids is not None:
        stmt = stmt.where(events.c.id.in_(list(event_ids)))
    else:
        stmt = stmt.where(events.c.status != "done")
    if topic:
        stmt = stmt.where(events.c.topic == topic)
    with engine.connect() as conn:
        ids: list[int] = list(conn.execute(stmt).scalars())
    return {event_id: dispatch_event(engine, event_id) for event_id in ids}


def retry_abandoned_events(
    engine: Engine, recorded_before: dt.datetime, limit: int = 50
) -> dict[int, str]:
    """Run the handlers of events still `pending` that were recorded before
    `recorded_before`; returns each event's new status.

    An event is `pending` from its commit until the process that committed it has run its
    handlers (`dispatch_event`). If that process dies in between (kill -9 after a job's
    load committed, or while a handler ran), nothing else would ever run them: the reaper
    calls this with its stuck threshold, long after a live process would have finished.
    Handlers that already succeeded are not run again; one that was cut off is (delivery is
    at least once). Failed events are left to `etl events retry`.
    """
    stmt = (
        sa.select(events.c.id)
        .where(events.c.status == "pending", events.c.created_at < recorded_before)
        .order_by(events.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        ids: list[int] = list(conn.execute(stmt).scalars())
    return {event_id: dispatch_event(engine, event_id) for event_id in ids}


def list_events(
    engine: Engine,
    *,
    status: str | None = None,
    topic: str | None = None,
    job_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Events, newest first, each with its handler runs."""
    stmt = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    for column, value in (("status", status), ("topic", topic), ("job_id", job_id)):
        if value:
            stmt = stmt.where(events.c[column] == value)
    with engine.connect() as conn:
        found = [dict(row._mapping) for row in conn.execute(stmt)]
        runs = conn.execute(
            sa.select(event_handler_runs)
            .where(event_handler_runs.c.event_id.in_([e["id"] for e in found]))
            .order_by(event_handler_runs.c.id)
        ).all()
    for event in found:
        event["handlers"] = [
            {k: run._mapping[k] for k in ("handler", "status", "attempts", "error", "updated_at")}
            for run in runs
            if run.event_id == event["id"]
        ]
    return found


def summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload for a log line: long lists shortened to their first items and length."""
    return {
        key: [*value[:5], f"... {len(value)} in all"]
        if isinstance(value, list) and len(value) > 5
        else value
        for key, value in payload.items()
    }


def _run(handler: Handler, name: str, event: Event) -> str | None:
    try:
        handler(event)
    except Exception as exc:  # noqa: BLE001 - a handler's failure is recorded, never raised
        log.warning(f"Event handler failed: id={event.id} topic={event.topic} handler={name}")
        return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    log.info(f"Event handled: id={event.id} topic={event.topic} handler={name}")
    return None


def _record_run(engine: Engine, event_id: int, name: str, error: str | None) -> None:
    runs = event_handler_runs
    values = {"status": "failed" if error else "ok", "error": error, "updated_at": utcnow()}
    with engine.begin() as conn:
        changed = conn.execute(
            runs.update()
            .where(runs.c.event_id == event_id, runs.c.handler == name)
            .values(attempts=runs.c.attempts + 1, **values)
        ).rowcount
        if not changed:
            conn.execute(runs.insert().values(event_id=event_id, handler=name, **values))


def _event(conn: sa.Connection, event_id: int) -> Event:
    row = conn.execute(sa.select(events).where(events.c.id == event_id)).one_or_none()
    if row is None:
        raise LookupError(f"no event {event_id}")
    return Event(row.id, row.topic, dict(row.payload), row.job_id, row.created_at)


def _default_engine() -> Engine:
    from etl_assets.config import Settings
    from etl_assets.db import engine_for

    return engine_for(Settings.from_env())
