"""A loop on a daemon thread of its own, started and stopped by its owner.

The heartbeat of a job (`runs.tracking.Heartbeat`), the ops API's inbox watcher
(`intake.inbox_watcher`) and its listener for new jobs (`runtime.due_jobs_listener`) each
run one: a thread that waits on a stop event between rounds, so `stop()` ends it within one
round's wait, and joins it with a bound, so a round stuck on the network never hangs the
process that is shutting down.
"""

from __future__ import annotations

import threading
from typing import Self


class BackgroundLoop:
    """Runs `_run` on a daemon thread named `name` from `start()` until `stop()`.

    Subclasses implement `_run`, waiting with `self._stopped.wait(seconds)` (true once
    stopped) between rounds, and may override `_wanted` to decline to start at all."""

    def __init__(self, name: str, join_seconds: float) -> None:
        self._name = name
        self._join_seconds = join_seconds  # the longest `stop` waits for a round to end
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start the loop, unless it runs already or is not wanted; returns self."""
        if self._thread is None and self._wanted():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and wait (at most the join bound) for its round to end."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_seconds)
            self._thread = None

    def _wanted(self) -> bool:
        return True

    def _run(self) -> None:
        raise NotImplementedError
