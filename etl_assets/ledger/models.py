"""Job states, the transitions allowed between them, and the `Job` record read from the ledger."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class JobStatus(enum.StrEnum):
    """Where a job is in its life. `failed` is the dead-letter state; `cancelled` is by a person."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ErrorType(enum.StrEnum):
    """Why the last attempt failed; decides whether the job is retried."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    TIMEOUT = "timeout"
    TRANSIENT_EXHAUSTED = "transient_exhausted"
    BUG = "bug"  # an unforeseen exception in the platform's or a dataset's code: not retried


class AttemptOutcome(enum.StrEnum):
    """How one attempt (one claim or one step retry) ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)

ALLOWED_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (P, R),  # claimed by a dispatcher
        (R, C),  # loaded
        (R, P),  # transient failure or reaped, attempts left: back in the queue
        (R, F),  # permanent failure or attempts exhausted (dead letter)
        (F, P),  # manual retry
        (X, P),  # manual retry of a cancelled job
        (P, X),  # cancelled before it ran
        (R, X),  # cancelled while running
    }
)
FINISHED_STATUSES = frozenset({C, F, X})


@dataclass(frozen=True)
class Job:
    """One row of the jobs ledger, as read at one moment."""

    job_id: str
    title: str
    dataset: str
    source_uri: str
    source_name: str
    content_sha256: str
    size_bytes: int
    status: JobStatus
    priority: int
    attempts: int
    retry_count: int
    max_attempts: int
    run_id: str | None
    error_type: ErrorType | None
    error_message: str | None
    error_traceback: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    completed_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    rows_total: int | None
    rows_processed: int
    rows_loaded: int
    rows_quarantined: int
    rows_duplicate: int
    checkpoint: dict[str, Any] | None
    metrics: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        """Build from a `jobs` row mapping."""
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        if values["error_type"] is not None:
            values["error_type"] = ErrorType(values["error_type"])
        return cls(**values)

    @property
    def attempts_left(self) -> int:
        """Attempts the job may still start before it is dead-lettered."""
        return self.max_attempts - self.attempts

    @property
    def run_key(self) -> str:
        """The dispatch sensor's run_key for the current attempt: unique per job attempt."""
        return f"{self.job_id}:{self.attempts}"
