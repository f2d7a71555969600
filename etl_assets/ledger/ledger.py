"""The jobs ledger: every state change of a job is a validated compare-and-set.

Each public method that writes says what it commits. Methods taking a `conn` run inside the
caller's transaction (so a warehouse load and the job's move to `completed` commit together);
the others open and commit their own.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection, utcnow
from etl_assets.ledger import quarantine
from etl_assets.ledger.dialect import dialect_insert
from etl_assets.ledger.errors import IllegalTransition, JobNotFound, JobNotOwned
from etl_assets.ledger.models import (
    ALLOWED_TRANSITIONS,
    AttemptOutcome,
    ErrorType,
    Job,
    JobStatus,
)
from etl_assets.ledger.schema import job_attempts, job_status_counts, jobs

MAX_ERROR_MESSAGE = 2000
MAX_TRACEBACK = 20_000


def new_job_id(now: dt.datetime | None = None) -> str:
    """A sortable job id: 48-bit millisecond time then 80 random bits, Crockford base32 (ULID)."""
    millis = int((now or utcnow()).timestamp() * 1000)
    value = (millis << 80) | secrets.randbits(80)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


class Ledger:
    """Reads and writes the jobs, job_attempts and quarantined_rows tables."""

    def __init__(self, engine: Engine, *, max_attempts: int = 3) -> None:
        self.engine = engine
        self.max_attempts = max_attempts

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
            title=(title or source_name)[:200],
            dataset=dataset,
            source_uri=source_uri,
            source_name=source_name[:255],
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

    # ----------------------------------------------------------------- run life

    def begin_run(self, job_id: str, run_id: str, *, worker: str | None = None) -> Job:
        """Attach a Dagster run (and the worker running it) to the job's current attempt;
        commits. Returns the job.

        The normal case is a job the dispatch sensor claimed. A run launched by hand (from the
        Dagster UI) for a pending job claims it here; one for a failed job counts as a manual
        retry. A run for a job another live run holds, or for a finished job, is refused.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            job = self._get(conn, job_id)
            if job.status is JobStatus.PROCESSING and job.run_id == run_id:
                return job  # a later step (or a step retry) of the run that holds the job
            if job.status is JobStatus.PROCESSING and job.run_id is None:
                pass  # claimed by the dispatcher, waiting for this run to attach
            elif job.run_id == run_id:
                # Another step of this run already ended the job (failed it, say): the
                # run's remaining steps must not start it again.
                raise IllegalTransition(
                    job_id, job.status, JobStatus.PROCESSING, "this run already ended it"
                )
            elif job.status is JobStatus.FAILED:
                self._reset_for_retry(conn, job, now)
                job = self._claim_one(conn, job_id, now)
            elif job.status is JobStatus.PENDING:
                job = self._claim_one(conn, job_id, now)
            else:
                why = (
                    f"it is held by run {job.run_id}"
                    if job.status is JobStatus.PROCESSING
                    else "a finished job is not run again"
                )
                raise IllegalTransition(job_id, job.status, JobStatus.PROCESSING, why)
            job = self._transition(
                conn,
                job_id,
                JobStatus.PROCESSING,
                expected=[JobStatus.PROCESSING],
                where=[jobs.c.run_id.is_(None)],
                run_id=run_id,
                started_at=now,
                last_heartbeat_at=now,
            )
            conn.execute(
                sa.update(job_attempts)
                .where(job_attempts.c.job_id == job_id, job_attempts.c.attempt == job.attempts)
                .values(run_id=run_id, worker=worker)
            )
            return job

    def heartbeat(
        self,
        job_id: str,
        run_id: str,
        *,
        rows_processed: int | None = None,
        conn: sa.Connection | None = None,
    ) -> None:
        """Refresh the job's heartbeat (and progress); commits unless `conn` is given.

        Raises JobNotOwned when the job was cancelled, reaped or taken over, so a run that
        lost its job stops instead of writing on.
        """
        values: dict[str, Any] = {"last_heartbeat_at": utcnow()}
        if rows_processed is not None:
            values["rows_processed"] = rows_processed
        stmt = (
            sa.update(jobs)
            .where(
                jobs.c.job_id == job_id,
                jobs.c.status == JobStatus.PROCESSING.value,
                jobs.c.run_id == run_id,
            )
            .values(**values)
        )
        if conn is not None:
            self._require_owned(conn, conn.execute(stmt).rowcount, job_id, run_id)
            return
        with self.engine.begin() as own:
            self._require_owned(own, own.execute(stmt).rowcount, job_id, run_id)

    def set_rows_total(self, job_id: str, run_id: str, rows_total: int) -> None:
        """Record how many data rows the job's file holds; commits."""
        with self.engine.begin() as conn:
            stmt = (
                sa.update(jobs)
                .where(
                    jobs.c.job_id == job_id,
                    jobs.c.status == JobStatus.PROCESSING.value,
                    jobs.c.run_id == run_id,
                )
                .values(rows_total=rows_total, updated_at=utcnow())
            )
            self._require_owned(conn, conn.execute(stmt).rowcount, job_id, run_id)

    def save_checkpoint(
        self,
        conn: sa.Connection,
        job_id: str,
        run_id: str,
        checkpoint: Mapping[str, Any],
        *,
        rows_processed: int,
        rows_loaded: int,
        rows_duplicate: int,
    ) -> None:
        """Store progress after a committed chunk, in the chunk's own transaction."""
        stmt = (
            sa.update(jobs)
            .where(
                jobs.c.job_id == job_id,
                jobs.c.status == JobStatus.PROCESSING.value,
                jobs.c.run_id == run_id,
            )
            .values(
                checkpoint=dict(checkpoint),
                rows_processed=rows_processed,
                rows_loaded=rows_loaded,
                rows_duplicate=rows_duplicate,
                last_heartbeat_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        self._require_owned(conn, conn.execute(stmt).rowcount, job_id, run_id)

    def move_recovered_rows(
        self, conn: sa.Connection, job_id: str, *, loaded: int, duplicate: int
    ) -> None:
        """Move rows a quarantine retry resolved from `rows_quarantined` to `rows_loaded` /
        `rows_duplicate`, in the caller's (the load's) transaction."""
        if not loaded and not duplicate:
            return
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(
                rows_loaded=jobs.c.rows_loaded + loaded,
                rows_duplicate=jobs.c.rows_duplicate + duplicate,
                rows_quarantined=jobs.c.rows_quarantined - loaded - duplicate,
                updated_at=utcnow(),
            )
        )

    def complete(
        self,
        conn: sa.Connection,
        job_id: str,
        run_id: str,
        *,
        rows_loaded: int,
        rows_duplicate: int,
        metrics: Mapping[str, Any],
    ) -> Job:
        """Move the job to completed in the caller's (the load's) transaction.

        Checks that every input row is accounted for (loaded, quarantined or duplicate) and
        raises ValueError when it is not, so the load rolls back instead of losing rows.
        """
        now = utcnow()
        job = self._get(conn, job_id)
        quarantined = quarantine.count_open(conn, job_id)
        accounted = rows_loaded + quarantined + rows_duplicate
        if job.rows_total is not None and accounted != job.rows_total:
            raise ValueError(
                f"job {job_id}: {job.rows_total} rows read but {accounted} accounted for "
                f"({rows_loaded} loaded, {quarantined} quarantined, {rows_duplicate} duplicate)"
            )
        completed = self._transition(
            conn,
            job_id,
            JobStatus.COMPLETED,
            expected=[JobStatus.PROCESSING],
            where=[jobs.c.run_id == run_id],
            completed_at=now,
            last_heartbeat_at=now,
            rows_processed=accounted,
            rows_loaded=rows_loaded,
            rows_quarantined=quarantined,
            rows_duplicate=rows_duplicate,
            metrics=dict(metrics),
            error_type=None,
            error_message=None,
            error_traceback=None,
        )
        self._end_attempt(conn, completed, AttemptOutcome.SUCCEEDED, now)
        return completed

    def fail(
        self,
        job_id: str,
        *,
        error_type: ErrorType,
        message: str,
        traceback: str | None = None,
        run_id: str | None = None,
    ) -> Job:
        """Move a processing job to failed and close its attempt; commits.

        With `run_id`, only that run (or a claim no run has attached to yet) may fail the job.
        """
        now = utcnow()
        where = [] if run_id is None else [sa.or_(jobs.c.run_id == run_id, jobs.c.run_id.is_(None))]
        with self.engine.begin() as conn:
            failed = self._transition(
                conn,
                job_id,
                JobStatus.FAILED,
                expected=[JobStatus.PROCESSING],
                where=where,
                retry_count=jobs.c.retry_count + 1,
                error_type=error_type.value,
                error_message=message[:MAX_ERROR_MESSAGE],
                error_traceback=(traceback or "")[-MAX_TRACEBACK:] or None,
                last_heartbeat_at=now,
                completed_at=now,  # when it finished: retention and recent-failure queries
                next_attempt_at=None,
            )
            self._end_attempt(conn, failed, AttemptOutcome.FAILED, now, error_type, message)
        return failed

    def retry_in_run(
        self,
        job_id: str,
        run_id: str,
        *,
        error_type: ErrorType,
        message: str,
        traceback: str | None,
        retry_at: dt.datetime,
    ) -> Job:
        """Record a failed attempt that the same run retries at `retry_at`; commits.

        The job stays processing; its attempt ends failed, `retry_count` and `attempts` go up
        and the next attempt is opened. Raises IllegalTransition when no attempt is left.

        A second step of the run failing while a retry is already scheduled (two API steps
        hit by the same outage) belongs to the same failed attempt: nothing changes, and the
        job is returned with the retry already planned (its `next_attempt_at`).
        """
        now = utcnow()
        with self.engine.begin() as conn:
            current = self._get(conn, job_id)
            scheduled = current.next_attempt_at
            if (
                current.status is JobStatus.PROCESSING
                and current.run_id == run_id
                and scheduled is not None
                and scheduled > now
            ):
                return current
            job = self._transition(
                conn,
                job_id,
                JobStatus.PROCESSING,
                expected=[JobStatus.PROCESSING],
                where=[jobs.c.run_id == run_id, jobs.c.attempts < jobs.c.max_attempts],
                attempts=jobs.c.attempts + 1,
                retry_count=jobs.c.retry_count + 1,
                error_type=error_type.value,
                error_message=message[:MAX_ERROR_MESSAGE],
                error_traceback=(traceback or "")[-MAX_TRACEBACK:] or None,
                next_attempt_at=retry_at,
                last_heartbeat_at=now,
            )
            self._end_attempt(
                conn, job, AttemptOutcome.FAILED, now, error_type, message, job.attempts - 1
            )
            # The next attempt starts when the retry is due, never before this one ended
            # (a retry_at computed before this transaction may already be past).
            self._open_attempt(conn, job, max(retry_at, now), run_id)
            return job

    def requeue_or_fail(
        self,
        job_id: str,
        *,
        run_id: str | None,
        attempt: int,
        error_type: ErrorType,
        message: str,
        retry_at: dt.datetime,
        stale_before: dt.datetime | None = None,
    ) -> Job:
        """Take back a processing job whose run died, hung or failed outside its steps; commits.

        With attempts left it goes back to pending, due at `retry_at`; without, it fails as
        `transient_exhausted`. Only the attempt the caller saw (`run_id`, `attempt` and, with
        `stale_before`, a heartbeat older than that) is taken: a job that moved on meanwhile
        raises IllegalTransition and is left alone.
        """
        now = utcnow()
        owner = jobs.c.run_id.is_(None) if run_id is None else jobs.c.run_id == run_id
        where = [owner, jobs.c.attempts == attempt]
        if stale_before is not None:
            where.append(jobs.c.last_heartbeat_at < stale_before)
        outcome = (
            AttemptOutcome.TIMED_OUT if error_type is ErrorType.TIMEOUT else AttemptOutcome.FAILED
        )
        common = dict(
            retry_count=jobs.c.retry_count + 1,
            error_message=message[:MAX_ERROR_MESSAGE],
            error_traceback=None,
        )
        with self.engine.begin() as conn:
            current = self._get(conn, job_id)
            if current.attempts < current.max_attempts:
                job = self._transition(
                    conn,
                    job_id,
                    JobStatus.PENDING,
                    expected=[JobStatus.PROCESSING],
                    where=where,
                    error_type=error_type.value,
                    next_attempt_at=retry_at,
                    run_id=None,
                    **common,
                )
            else:
                job = self._transition(
                    conn,
                    job_id,
                    JobStatus.FAILED,
                    expected=[JobStatus.PROCESSING],
                    where=where,
                    error_type=ErrorType.TRANSIENT_EXHAUSTED.value,
                    completed_at=now,
                    next_attempt_at=None,
                    **common,
                )
            self._end_attempt(conn, job, outcome, now, error_type, message, attempt)
            return job

    def processing_jobs(self) -> list[Job]:
        """Every job in processing (for the reaper: at most the running and queued ones)."""
        stmt = sa.select(jobs).where(jobs.c.status == JobStatus.PROCESSING.value)
        with read_connection(self.engine) as conn:
            return [Job.from_row(row) for row in conn.execute(stmt).mappings()]

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

    # ----------------------------------------------------------------- internals

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
                error_message=message[:MAX_ERROR_MESSAGE] if message else None,
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
            .values(status=target.value, updated_at=utcnow(), **values)
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
