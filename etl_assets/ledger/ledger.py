"""The jobs ledger: every state change of a job is a validated compare-and-set.

Each public method that writes says what it commits. Methods taking a `conn` run inside the
caller's transaction (so a warehouse load and the job's move to `completed` commit together);
the others open and commit their own. The class is in three parts: `ledger.transitions`
(the compare-and-set and the attempt rows), `ledger.run_life` (a run's writes) and this module
(publishing, reading, dispatch and the operators' repairs).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa

from etl_assets.db import is_postgres, read_connection, utcnow
from etl_assets.ledger import quarantine
from etl_assets.ledger.dialect import dialect_insert
from etl_assets.ledger.errors import IllegalTransition
from etl_assets.ledger.models import AttemptOutcome, ErrorType, Job, JobStatus
from etl_assets.ledger.run_life import RunLife
from etl_assets.ledger.schema import job_attempts, job_status_counts, jobs
from etl_assets.ledger.storable import storable_text

# The PostgreSQL notification channel on which a new job's id is announced when its insert
# commits (runtime/due_jobs_listener.py starts its run without waiting for a sensor tick).
JOBS_DUE_CHANNEL = "etl_jobs_due"


def new_job_id(now: dt.datetime | None = None) -> str:
    """A sortable job id: 48-bit millisecond time then 80 random bits, Crockford base32 (ULID)."""
    millis = int((now or utcnow()).timestamp() * 1000)
    value = (millis << 80) | secrets.randbits(80)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


class Ledger(RunLife):
    """Reads and writes the jobs, job_attempts and quarantined_rows tables.

    `Ledger(engine, max_attempts=...)`. Publishing, reading, dispatch and the operators'
    repairs are here; a run's writes (begin_run ... requeue_or_fail, processing_jobs) come from
    `RunLife` (`ledger.run_life`), the compare-and-set they share from `LedgerCore`
    (`ledger.transitions`).
    """

    # ----------------------------------------------------------------- publishing

    def create_job(
        self,
        *,
        dataset: str,
        source_uri: str,
        source_name: str,
        content_sha256: str,
        size_bytes: int,
        title: str | None = None,
        priority: int = 0,
    ) -> tuple[Job, bool]:
        """Insert a pending job; commits. Returns (job, created).

        The same content for the same dataset is one job: a second submission returns the
        existing job with `created=False` and writes nothing.
        """
        now = utcnow()
        values = dict(
            job_id=new_job_id(now),
            title=storable_text((title or source_name)[:200]),
            dataset=dataset,
            source_uri=source_uri,
            source_name=storable_text(source_name[:255]),
            content_sha256=content_sha256,
            size_bytes=size_bytes,
            status=JobStatus.PENDING.value,
            priority=priority,
            attempts=0,
            retry_count=0,
            max_attempts=self.max_attempts,
            created_at=now,
            updated_at=now,
        )
        with self.engine.begin() as conn:
            stmt = (
                dialect_insert(conn, jobs)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["dataset", "content_sha256"])
                .returning(jobs.c.job_id)
            )
            created = conn.execute(stmt).first() is not None
            if created and is_postgres(conn):
                # Delivered when this transaction commits, to every DueJobsListener
                # (runtime/due_jobs_listener.py): the job's run can start now, not at a tick.
                conn.execute(sa.select(sa.func.pg_notify(JOBS_DUE_CHANNEL, values["job_id"])))
            row = (
                conn.execute(
                    sa.select(jobs).where(
                        jobs.c.dataset == dataset, jobs.c.content_sha256 == content_sha256
                    )
                )
                .mappings()
                .one()
            )
        return Job.from_row(row), created

    # ----------------------------------------------------------------- reading

    def get(self, job_id: str, conn: sa.Connection | None = None) -> Job:
        """The job as it is now; raises JobNotFound."""
        if conn is not None:
            return self._get(conn, job_id)
        with read_connection(self.engine) as read:
            return self._get(read, job_id)

    def list_jobs(
        self, *, status: JobStatus | None = None, dataset: str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first, optionally of one status or dataset."""
        stmt = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc())
        if status is not None:
            stmt = stmt.where(jobs.c.status == status.value)
        if dataset is not None:
            stmt = stmt.where(jobs.c.dataset == dataset)
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt.limit(limit)).mappings().all()
        return [Job.from_row(row) for row in rows]

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's attempts, first to last."""
        stmt = (
            sa.select(job_attempts)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        )
        with read_connection(self.engine) as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]

    def quarantined(self, job_id: str) -> list[dict[str, Any]]:
        """The job's rows still in quarantine, in file order."""
        return quarantine.list_rows(self.engine, job_id=job_id)

    def status_counts(self, dataset: str | None = None) -> dict[str, int]:
        """Number of jobs in each status (of one dataset, or all), from the counts the
        database's triggers keep: constant time whatever the size of the ledger."""
        count = sa.func.sum(job_status_counts.c.jobs).label("n")
        stmt = sa.select(job_status_counts.c.status, count).group_by(job_status_counts.c.status)
        if dataset is not None:
            stmt = stmt.where(job_status_counts.c.dataset == dataset)
        with read_connection(self.engine) as conn:
            return {row.status: int(row.n) for row in conn.execute(stmt) if row.n}

    # ----------------------------------------------------------------- dispatch

    def claim_due(self, limit: int, now: dt.datetime | None = None) -> list[Job]:
        """Atomically move up to `limit` due pending jobs to processing; commits.

        Order: priority (high first), then age. Each claim starts a new attempt (recorded in
        job_attempts). On PostgreSQL concurrent claimers skip each other's locked rows; on
        SQLite the write transaction (BEGIN IMMEDIATE) serializes them. Either way a job is
        claimed by exactly one caller.
        """
        if limit <= 0:
            return []
        now = now or utcnow()
        due = (
            sa.select(jobs.c.job_id)
            .where(
                jobs.c.status == JobStatus.PENDING.value,
                jobs.c.attempts < jobs.c.max_attempts,
                sa.or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= now),
            )
            .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.job_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            # A CTE runs once. As an IN (subquery) PostgreSQL may run it again while
            # updating, see other pending rows, and claim more than `limit` jobs.
            .cte("due")
        )
        claim = (
            sa.update(jobs)
            .where(jobs.c.job_id == due.c.job_id)
            .where(jobs.c.status == JobStatus.PENDING.value)
            .values(
                status=JobStatus.PROCESSING.value,
                attempts=jobs.c.attempts + 1,
                run_id=None,
                started_at=None,
                last_heartbeat_at=now,
                next_attempt_at=None,
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        with self.engine.begin() as conn:
            claimed = [Job.from_row(row) for row in conn.execute(claim).mappings().all()]
            if claimed:
                conn.execute(
                    job_attempts.insert(),
                    [
                        dict(
                            job_id=job.job_id,
                            attempt=job.attempts,
                            started_at=now,
                            outcome=AttemptOutcome.RUNNING.value,
                        )
                        for job in claimed
                    ],
                )
        claimed.sort(key=lambda job: (-job.priority, job.created_at, job.job_id))
        return claimed

    # ----------------------------------------------------------------- operators

    def retry(self, job_id: str, *, priority: int | None = None) -> Job:
        """Put a failed (or cancelled) job back to pending with a fresh attempt budget;
        commits.

        Its history (attempts, last error, retry_count) is kept. `priority`, when higher than
        the job's, lets the retry go ahead of other pending jobs.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            return self._reset_for_retry(
                conn, job, now, priority, retryable=(JobStatus.FAILED, JobStatus.CANCELLED)
            )

    def retry_failed(
        self, *, error_type: ErrorType | None = None, priority: int | None = None
    ) -> list[Job]:
        """Retry every failed job (of one error type, if given); commits each."""
        stmt = sa.select(jobs.c.job_id).where(jobs.c.status == JobStatus.FAILED.value)
        if error_type is not None:
            stmt = stmt.where(jobs.c.error_type == error_type.value)
        with read_connection(self.engine) as conn:
            job_ids: list[str] = list(conn.execute(stmt.order_by(jobs.c.created_at)).scalars())
        retried = []
        for job_id in job_ids:
            try:
                retried.append(self.retry(job_id, priority=priority))
            except IllegalTransition:
                continue  # retried or changed by someone else meanwhile
        return retried

    def cancel(self, job_id: str) -> Job:
        """Cancel a pending or processing job; commits. A running attempt ends `cancelled`."""
        now = utcnow()
        with self.engine.begin() as conn:
            job = self._transition(
                conn,
                job_id,
                JobStatus.CANCELLED,
                expected=[JobStatus.PENDING, JobStatus.PROCESSING],
                completed_at=now,
            )
            self._end_attempt(conn, job, AttemptOutcome.CANCELLED, now)
            return job
