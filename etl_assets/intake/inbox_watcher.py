"""Take settled inbox files as jobs within a fraction of a second, not at the inbox tick.

The inbox sensor looks at INBOX_DIR every INBOX_INTERVAL_SECONDS (10 by default, and
Dagster's sensor daemon never evaluates a sensor more often than every 5 s), so a dropped
file waited about half an interval on top of its settle time. A long-lived process (`etl
api`, on PostgreSQL) also looks every POLL_SECONDS with the same publisher: the file
becomes a job as soon as it has settled, the ledger announces the job, and the process's
DueJobsListener starts its run. Both may look at one file at once; the publisher takes a
file the other took first as gone, or as the same content and so the same job
(`publish_inbox`). The sensor goes on as before, and takes everything when no API runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from etl_assets.background import BackgroundLoop
from etl_assets.intake.publisher import publish_inbox
from etl_assets.ledger import Ledger

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # one listing of each dataset's inbox folder: cheap
PAUSE_AFTER_FAILURE_SECONDS = 30


class InboxWatcher(BackgroundLoop):
    """Publishes the settled files of `inbox_dir` every POLL_SECONDS on a thread of its own
    (archived under `archive_dir`, as the inbox sensor does); `stop` waits for the file it
    is on."""

    def __init__(
        self, ledger: Ledger, archive_dir: Path, inbox_dir: Path, settle_seconds: float
    ) -> None:
        super().__init__("inbox-watcher", join_seconds=30)
        self._ledger = ledger
        self._archive_dir = archive_dir
        self._inbox_dir = inbox_dir
        self._settle_seconds = settle_seconds

    def _run(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            try:
                published = publish_inbox(
                    self._ledger, self._archive_dir, self._inbox_dir, self._settle_seconds
                )
            except Exception:  # the inbox sensor takes the file instead
                logger.warning(
                    "inbox: not taken here; the inbox sensor will (looking again in %d s)",
                    PAUSE_AFTER_FAILURE_SECONDS,
                    exc_info=True,
                )
                self._stopped.wait(PAUSE_AFTER_FAILURE_SECONDS)  # one warning, not two a second
                continue
            for item in published:
                verdict = "new job" if item.created else "duplicate of"
                logger.info("inbox: %s: %s %s", item.job.source_name, verdict, item.job.job_id)
