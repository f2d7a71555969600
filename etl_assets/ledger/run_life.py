"""A job's run life in the ledger: a run attaches, heartbeats, checkpoints, then completes,
fails, retries in the run, or is taken back by the reaper.

`RunLife` is the part of `Ledger` (`ledger.ledger`) that the runs and sensors call while a
job is processing; each method says what it commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from etl_assets.db import read_connection, utcnow
from etl_assets.ledger import quarantine
from etl_assets.ledger.errors import IllegalTransition
from etl_assets.ledger.models import AttemptOutcome, ErrorType, Job, JobStatus
from etl_assets.ledger.schema import job_attempts, jobs
from etl_assets.ledger.transitions import MAX_ERROR_MESSAGE, MAX_TRACEBACK, LedgerCore


class RunLife(LedgerCore):
    """What runs, sensors and the reaper call while a job is processing (see `Ledger`)."""

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
