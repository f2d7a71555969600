"""Jobs for operators: the filtered, sorted list and everything on one job, with its
progress (`progress_of`) and attempts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection, utcnow
from etl_assets.ledger.errors import JobNotFound
from etl_assets.ledger.models import AttemptOutcome, ErrorType, Job, JobStatus
from etl_assets.ledger.schema import job_attempts, jobs
from etl_assets.ops.read_model.common import (
    DEFAULT_DAGSTER_UI_URL,
    _check_page,
    _order,
    _seconds,
    run_url,
)


class JobSort(enum.StrEnum):
    """Orders `list_jobs` accepts; a leading '-' means descending. Ties break on job_id."""

    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"
    COMPLETED_AT = "completed_at"
    COMPLETED_AT_DESC = "-completed_at"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"
    STATUS = "status"
    STATUS_DESC = "-status"


@dataclass(frozen=True)
class JobFilters:
    """Which jobs to list. Dates are compared with `created_at`: from inclusive, to exclusive."""

    statuses: Sequence[JobStatus] = ()
    dataset: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    error_type: ErrorType | None = None


@dataclass(frozen=True)
class Progress:
    """How far a job is: rows, percent, rate over its current attempt, and time left.

    `rows_per_second` divides the rows processed by the seconds since the current attempt
    started (until completion for a finished job); after a resumed attempt it includes the
    rows earlier attempts committed, so it reads high. `eta_seconds` is only given for a
    processing job whose total and rate are known.
    """

    rows_processed: int
    rows_total: int | None
    percent_complete: float | None
    elapsed_seconds: float | None
    rows_per_second: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class JobSummary:
    """One job in a list: identity, state, counters and the last error's short message."""

    job_id: str
    title: str
    dataset: str
    source_name: str
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    retry_count: int
    error_type: ErrorType | None
    error_message: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    rows_total: int | None
    rows_processed: int
    rows_loaded: int
    rows_quarantined: int
    rows_duplicate: int
    percent_complete: float | None
    run_id: str | None


@dataclass(frozen=True)
class JobPage:
    """A page of jobs and how many match in all."""

    items: list[JobSummary]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job: its run, when it ran, how it ended."""

    attempt: int
    run_id: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: AttemptOutcome
    error_type: ErrorType | None
    error_message: str | None
    duration_seconds: float | None
    dagster_run_url: str | None


@dataclass(frozen=True)
class JobDetail:
    """Everything the ledger holds on a job, with its progress, attempts and Dagster run link."""

    job: Job
    progress: Progress
    attempts: list[Attempt]
    dagster_run_url: str | None


def _percent(done: int, total: int | None) -> float | None:
    if not total:
        return 100.0 if total == 0 else None
    return round(min(100.0 * done / total, 100.0), 1)


def progress_of(values: Mapping[Any, Any], now: dt.datetime | None = None) -> Progress:
    """The progress of a job given its `jobs` row (a mapping or a Job's fields)."""
    now = now or utcnow()
    status = JobStatus(values["status"])
    total, done = values["rows_total"], int(values["rows_processed"] or 0)
    end = values["completed_at"] if status in (JobStatus.COMPLETED, JobStatus.CANCELLED) else None
    if status is JobStatus.FAILED:
        end = values["updated_at"]
    # A pending job may keep the start of an attempt that was taken back: it is not running.
    started = None if status is JobStatus.PENDING else values["started_at"]
    elapsed = _seconds(end or now, started)
    rate = round(done / elapsed, 1) if elapsed and done else None
    eta = None
    if status is JobStatus.PROCESSING and rate and total is not None:
        eta = round(max(total - done, 0) / rate, 1)
    return Progress(done, total, _percent(done, total), elapsed, rate, eta)


def _summary(row: Mapping[Any, Any]) -> JobSummary:
    return JobSummary(
        job_id=row["job_id"],
        title=row["title"],
        dataset=row["dataset"],
        source_name=row["source_name"],
        status=JobStatus(row["status"]),
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        retry_count=row["retry_count"],
        error_type=ErrorType(row["error_type"]) if row["error_type"] else None,
        error_message=row["error_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        rows_total=row["rows_total"],
        rows_processed=row["rows_processed"],
        rows_loaded=row["rows_loaded"],
        rows_quarantined=row["rows_quarantined"],
        rows_duplicate=row["rows_duplicate"],
        percent_complete=_percent(row["rows_processed"], row["rows_total"]),
        run_id=row["run_id"],
    )


def summarize(job: Job) -> JobSummary:
    """The list view of a Job read from the ledger."""
    return _summary({f.name: getattr(job, f.name) for f in dataclasses.fields(job)})


def _job_conditions(filters: JobFilters) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if filters.statuses:
        where.append(jobs.c.status.in_([JobStatus(s).value for s in filters.statuses]))
    if filters.dataset is not None:
        where.append(jobs.c.dataset == filters.dataset)
    if filters.created_from is not None:
        where.append(jobs.c.created_at >= filters.created_from)
    if filters.created_to is not None:
        where.append(jobs.c.created_at < filters.created_to)
    if filters.error_type is not None:
        where.append(jobs.c.error_type == ErrorType(filters.error_type).value)
    return where


def list_jobs(
    engine: Engine,
    filters: JobFilters | None = None,
    *,
    sort: JobSort | str = JobSort.CREATED_AT_DESC,
    limit: int = 50,
    offset: int = 0,
) -> JobPage:
    """A page of jobs matching `filters`, in `sort` order, and how many match in all.

    Raises ValueError for a sort key, limit or offset out of range.
    """
    _check_page(limit, offset)
    key = JobSort(sort)
    descending = key.value.startswith("-")
    column = jobs.c[key.value.lstrip("-")]
    where = _job_conditions(filters or JobFilters())
    stmt = (
        sa.select(jobs)
        .where(*where)
        .order_by(_order(column, descending), _order(jobs.c.job_id, descending))
        .limit(limit)
        .offset(offset)
    )
    with read_connection(engine) as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(*where))
        count = int(total.scalar_one())
        rows = conn.execute(stmt).mappings().all()
    return JobPage([_summary(row) for row in rows], count, limit, offset)


def job_detail(
    engine: Engine,
    job_id: str,
    *,
    dagster_ui_url: str | None = DEFAULT_DAGSTER_UI_URL,
    now: dt.datetime | None = None,
) -> JobDetail:
    """Everything on one job; raises JobNotFound."""
    with read_connection(engine) as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        attempt_rows = conn.execute(
            sa.select(job_attempts)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        ).mappings()
        attempts = [
            Attempt(
                attempt=a["attempt"],
                run_id=a["run_id"],
                started_at=a["started_at"],
                ended_at=a["ended_at"],
                outcome=AttemptOutcome(a["outcome"]),
                error_type=ErrorType(a["error_type"]) if a["error_type"] else None,
                error_message=a["error_message"],
                duration_seconds=_seconds(a["ended_at"], a["started_at"]),
                dagster_run_url=run_url(dagster_ui_url, a["run_id"]),
            )
            for a in attempt_rows
        ]
    job = Job.from_row(row)
    return JobDetail(
        job=job,
        progress=progress_of(row, now),
        attempts=attempts,
        dagster_run_url=run_url(dagster_ui_url, job.run_id),
    )
