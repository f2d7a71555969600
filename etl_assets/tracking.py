"""Keeps the ledger true while a run works on a job: ownership, heartbeats, failure capture.

Every asset step and the warehouse IO manager run their work inside `job_step`. It attaches
the run to the job (or refuses to touch a job it does not hold), and turns any exception into
a ledger record (`failed` with error type, message and traceback, `retry_count` + 1) and a
Dagster `Failure`, so a job is never left in `processing` by a step that failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from etl_assets.errors import classify
from etl_assets.ledger import Job, Ledger
from etl_assets.ledger.errors import IllegalTransition, JobNotFound, JobNotOwned

logger = logging.getLogger(__name__)


@contextmanager
def job_step(
    ledger: Ledger, job_id: str, run_id: str, step: str, log: logging.Logger | None = None
) -> Iterator[Job]:
    """Run one step of `run_id` on `job_id`; yields the job as the ledger has it.

    On failure the job is recorded as failed (when this run still holds it) and a
    `dg.Failure` is raised without Dagster retries.
    """
    log = log or logger
    try:
        job = ledger.begin_run(job_id, run_id)
    except (IllegalTransition, JobNotFound) as exc:
        raise dg.Failure(
            description=f"step {step} refused: {exc}",
            metadata={"job_id": job_id},
            allow_retries=False,
        ) from exc
    try:
        yield job
    except JobNotOwned as exc:
        # Cancelled or taken over while running: the ledger already says so; write nothing.
        log.warning("job=%s step %s stopped: %s", job_id, step, exc)
        raise dg.Failure(
            description=str(exc), metadata={"job_id": job_id}, allow_retries=False
        ) from exc
    except Exception as exc:
        raise _record_failure(ledger, job, run_id, step, exc, log) from exc


def _record_failure(
    ledger: Ledger, job: Job, run_id: str, step: str, exc: Exception, log: logging.Logger
) -> dg.Failure:
    error = classify(exc)
    message = f"attempt {job.attempts}/{job.max_attempts} failed in {step}: {error.message}"
    try:
        ledger.fail(
            job.job_id,
            error_type=error.error_type,
            message=message,
            traceback=error.traceback,
            run_id=run_id,
        )
    except Exception as ledger_exc:  # noqa: BLE001 - the database itself may be what failed
        log.error(
            "job=%s could not record its failure (%s); it stays processing until its "
            "heartbeat goes stale and the reaper reclaims it",
            job.job_id,
            ledger_exc,
        )
    log.error("job=%s %s", job.job_id, message)
    return dg.Failure(
        description=message,
        metadata={"job_id": job.job_id, "error_type": error.error_type.value},
        allow_retries=False,
    )


class Heartbeat:
    """Refreshes the job's heartbeat at most every `interval` seconds; cheap to call often.

    Raises JobNotOwned when the job was cancelled or reclaimed, which stops the step.
    """

    def __init__(self, ledger: Ledger, job_id: str, run_id: str, interval: float) -> None:
        self.ledger = ledger
        self.job_id = job_id
        self.run_id = run_id
        self.interval = interval
        self._last = time.monotonic()

    def beat(self, rows_processed: int | None = None, *, force: bool = False) -> None:
        """Write the heartbeat (and progress) if `interval` has passed since the last one."""
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self.ledger.heartbeat(self.job_id, self.run_id, rows_processed=rows_processed)
            self._last = now
