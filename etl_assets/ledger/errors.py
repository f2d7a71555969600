"""Errors the ledger raises when asked for something the job's state does not allow."""

from __future__ import annotations

from etl_assets.ledger.models import JobStatus


class LedgerError(Exception):
    """Base class of the ledger's own errors."""


class JobNotFound(LedgerError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} does not exist in the ledger")
        self.job_id = job_id


class IllegalTransition(LedgerError):
    """The job is not in a state from which the requested move is allowed."""

    def __init__(self, job_id: str, current: JobStatus, target: JobStatus, why: str = "") -> None:
        detail = f": {why}" if why else ""
        super().__init__(f"job {job_id} cannot move from {current} to {target}{detail}")
        self.job_id = job_id
        self.current = current
        self.target = target


class JobNotOwned(LedgerError):
    """The job is no longer held by this run (cancelled, reaped, or taken over by another run)."""

    def __init__(self, job_id: str, run_id: str, status: JobStatus, owner: str | None) -> None:
        super().__init__(
            f"job {job_id} is not held by run {run_id} any more "
            f"(status {status}, run {owner or 'none'}); this run stops without writing"
        )
        self.job_id = job_id
        self.status = status
