"""The ledger's compare-and-set core: moving a job between statuses and opening and
closing its attempts.

`LedgerCore` holds the engine and the attempt budget; `RunLife` (`ledger.run_life`) and
`Ledger` (`ledger.ledger`) build every state change of a job on its `_transition`, which
never overwrites a row from a state the caller did not expect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import utcnow
from etl_assets.ledger.errors import IllegalTransition, JobNotFound, JobNotOwned
from etl_assets.ledger.models import ALLOWED_TRANSITIONS, AttemptOutcome, ErrorType, Job, JobStatus
from etl_assets.ledger.schema import job_attempts, jobs
from etl_assets.ledger.storable import storable, storable_text

MAX_ERROR_MESSAGE = 2000
MAX_TRACEBACK = 20_000


class LedgerCore:
    """The engine, the attempt budget of new jobs, and the transitions every write uses."""

    def __init__(self, engine: Engine, *, max_attempts: int = 3) -> None:
        self.engine = engine
        self.max_attempts = max_attempts

    def _get(self, conn: sa.Connection, job_id: str) -> Job:
        row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    def _claim_one(self, conn: sa.Connection, job_id: str, now: dt.datetime) -> Job:
        job = self._transition(
            conn,
            job_id,
            JobStatus.PROCESSING,
            expected=[JobStatus.PENDING],
            where=[jobs.c.attempts < jobs.c.max_attempts],
            attempts=jobs.c.attempts + 1,
            run_id=None,
            next_attempt_at=None,
            last_heartbeat_at=now,
        )
        self._open_attempt(conn, job, now)
        return job

    def _reset_for_retry(
        self,
        conn: sa.Connection,
        job: Job,
        now: dt.datetime,
        priority: int | None = None,
        retryable: tuple[JobStatus, ...] = (JobStatus.FAILED,),
    ) -> Job:
        return self._transition(
            conn,
            job.job_id,
            JobStatus.PENDING,
            expected=list(retryable),
            max_attempts=job.attempts + self.max_attempts,
            priority=max(job.priority, priority) if priority is not None else job.priority,
            next_attempt_at=None,
            completed_at=None,
        )

    def _open_attempt(
        self, conn: sa.Connection, job: Job, started_at: dt.datetime, run_id: str | None = None
    ) -> None:
        conn.execute(
            job_attempts.insert().values(
                job_id=job.job_id,
                attempt=job.attempts,
                run_id=run_id,
                started_at=started_at,
                outcome=AttemptOutcome.RUNNING.value,
            )
        )

    def _end_attempt(
        self,
        conn: sa.Connection,
        job: Job,
        outcome: AttemptOutcome,
        now: dt.datetime,
        error_type: ErrorType | None = None,
        message: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Close the job's running attempt (its current one unless `attempt` says which)."""
        conn.execute(
            sa.update(job_attempts)
            .where(
                job_attempts.c.job_id == job.job_id,
                job_attempts.c.attempt == (attempt if attempt is not None else job.attempts),
                job_attempts.c.outcome == AttemptOutcome.RUNNING.value,
            )
            .values(
                outcome=outcome.value,
                ended_at=now,
                error_type=error_type.value if error_type else None,
                error_message=storable_text(message[:MAX_ERROR_MESSAGE]) if message else None,
            )
        )

    def _transition(
        self,
        conn: sa.Connection,
        job_id: str,
        target: JobStatus,
        *,
        expected: Iterable[JobStatus],
        where: Iterable[sa.ColumnElement[bool]] = (),
        **values: Any,
    ) -> Job:
        """Compare-and-set the job's status from one of `expected` to `target`.

        Raises IllegalTransition when no allowed move matches the job's current state; the
        row is never overwritten from a state the caller did not expect.
        """
        expected = list(expected)
        for current in expected:
            if current != target and (current, target) not in ALLOWED_TRANSITIONS:
                raise ValueError(f"{current} -> {target} is not a transition of the ledger")
        stmt = (
            sa.update(jobs)
            .where(
                jobs.c.job_id == job_id,
                jobs.c.status.in_([status.value for status in expected]),
                *where,
            )
            .values(status=target.value, updated_at=utcnow(), **storable(values))
            .returning(*jobs.c)
        )
        row = conn.execute(stmt).mappings().first()
        if row is None:
            job = self._get(conn, job_id)
            raise IllegalTransition(
                job_id,
                job.status,
                target,
                "" if job.status not in expected else f"its run is {job.run_id}",
            )
        return Job.from_row(row)

    def _require_owned(self, conn: sa.Connection, rowcount: int, job_id: str, run_id: str) -> None:
        if rowcount == 1:
            return
        job = self._get(conn, job_id)
        raise JobNotOwned(job_id, run_id, job.status, job.run_id)
