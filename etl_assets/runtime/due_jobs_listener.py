"""Start a submitted job's run at once, whoever submitted it, instead of at the next tick.

`POST /v1/jobs` starts its job's run itself (`dispatching.start_due_jobs`). A job created
anywhere else (`etl submit`, the inbox sensor) waited for the dispatch sensor's next tick:
2.5 s on average, 5 s at worst, with the tick's own evaluation on top. On PostgreSQL the
ledger announces every new job on a notification channel (`JOBS_DUE_CHANNEL`, sent when the
job's insert commits). A long-lived process that has the code location loaded (the ops API)
listens there and does what one dispatch tick would do, at once: the same atomic claim, so
a job is started exactly once whoever gets to it first, and the sensor still dispatches
whatever no listener took (a listener down, SQLite, the run queue full).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable

import sqlalchemy as sa

from etl_assets.background import BackgroundLoop
from etl_assets.db import is_postgres
from etl_assets.ledger.ledger import JOBS_DUE_CHANNEL

logger = logging.getLogger(__name__)

# How long one wait for a notification lasts: the longest `stop` waits for the thread.
WAIT_SECONDS = 1.0
# After the connection fails: the first pause before connecting again, doubled up to the most.
RECONNECT_SECONDS = (0.5, 30.0)


class DueJobsListener(BackgroundLoop):
    """Calls `on_due()` whenever the ledger of `engine` announces new jobs (several
    announcements that arrive together make one call), on a thread of its own with a
    connection of its own. Does nothing on SQLite, which has no notifications."""

    def __init__(self, engine: sa.Engine, on_due: Callable[[], object]) -> None:
        super().__init__("due-jobs", join_seconds=WAIT_SECONDS * 5)
        self._engine = engine
        self._on_due = on_due
        self._listening = threading.Event()

    def _wanted(self) -> bool:
        return is_postgres(self._engine)  # SQLite has no notifications to listen for

    def wait_listening(self, timeout: float) -> bool:
        """Whether the listener is connected and listening within `timeout` seconds."""
        return self._listening.wait(timeout)

    def _run(self) -> None:
        pause = RECONNECT_SECONDS[0]
        while not self._stopped.is_set():
            failure: Exception | None = None
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the sensor dispatches meanwhile; connect again
                failure = exc
            connected = self._listening.is_set()
            self._listening.clear()
            # Back off while connecting fails; a connection that was up starts over.
            pause = RECONNECT_SECONDS[0] if connected else min(pause * 2, RECONNECT_SECONDS[1])
            if failure is not None and not self._stopped.is_set():
                logger.warning(
                    "not listening for new jobs (the dispatch sensor starts them meanwhile); "
                    "connecting again in %.1f s",
                    pause,
                    exc_info=failure,
                )
            if self._stopped.wait(pause):
                return

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        connection = raw.driver_connection
        raw.detach()  # a LISTENing session never goes back to the pool
        try:
            connection.autocommit = True  # type: ignore[union-attr]
            with connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(f"LISTEN {JOBS_DUE_CHANNEL}")
            self._listening.set()
            # Jobs may have been created before the LISTEN took effect: look once now.
            self._call()
            while not self._stopped.is_set():
                readable, _, _ = select.select([connection], [], [], WAIT_SECONDS)
                if not readable:
                    continue
                connection.poll()  # type: ignore[union-attr]
                if connection.notifies:  # type: ignore[union-attr]
                    connection.notifies.clear()  # type: ignore[union-attr]
                    self._call()
        finally:
            connection.close()  # type: ignore[union-attr]

    def _call(self) -> None:
        try:
            self._on_due()
        except Exception:  # a failed start leaves the jobs to the sensor
            logger.warning("starting due jobs failed; the dispatch sensor will", exc_info=True)
