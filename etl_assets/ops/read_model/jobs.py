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
from etl_assets.ledger.schema import job_attempts, job_status_counts, jobs
from etl_assets.ops.read_model.common import (
    DEFAULT_DAGSTER_UI_URL,
    _after,
    _check_cursor,
    _check_page,
    _count_matching,
    _decode_cursor,
    _encode_cursor,
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
    """A page of jobs and how many match in all.

    `total` is exact unless `total_is_estimate` (a filter on dates or error type that matches
    more than `EXACT_COUNT_CAP` jobs: then it is PostgreSQL's estimate). `next_cursor` gives
    the next page (pass it as `cursor`), None on the last one; `has_more` says whether there
    is one.
    """

    items: list[JobSummary]
    total: int
    limit: int
    offset: int
    total_is_estimate: bool = False
    has_more: bool = False
    next_cursor: str | None = None


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


# The type of each sort column's values in a cursor; completed_at is the one that may be NULL.
_SORT_KINDS: dict[str, type] = {
    "created_at": dt.datetime,
    "updated_at": dt.datetime,
    "completed_at": dt.datetime,
    "priority": int,
    "status": str,
}
_NULLABLE_SORTS = {"completed_at"}
_COUNTED_FILTERS = {"statuses", "dataset"}  # what job_status_counts can answer


def list_jobs(
    engine: Engine,
    filters: JobFilters | None = None,
    *,
    sort: JobSort | str = JobSort.CREATED_AT_DESC,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> JobPage:
    """A page of jobs matching `filters`, in `sort` order, and how many match in all.

    Pages after `cursor` (the `next_cursor` of the page before) are read by keyset: the next
    `limit` entries of the sort's index, as fast on page 10,000 as on page 1. `offset` (at most
    MAX_OFFSET) skips rows and stays for small jumps. Jobs with no value of the sort column
    (completed_at of an unfinished job) come last either way. Raises ValueError for a sort
    key, limit, offset or cursor out of range.
    """
    _check_page(limit, offset)
    _check_cursor(offset, cursor)
    filters = filters or JobFilters()
    key = JobSort(sort)
    descending = key.value.startswith("-")
    name = key.value.lstrip("-")
    where = _job_conditions(filters)
    after = _decode_cursor(cursor, [_SORT_KINDS[name], str]) if cursor else None
    with read_connection(engine) as conn:
        if offset:
            rows = _offset_rows(conn, name, descending, where, limit + 1, offset)
        else:
            rows = _keyset_rows(conn, name, descending, where, limit + 1, after)
        has_more = len(rows) > limit
        rows = rows[:limit]
        if not (has_more or offset or cursor):
            total, estimate = len(rows), False  # the whole list is on this page
        elif _only_counted_filters(filters):
            total, estimate = _counted_total(conn, filters), False
        else:
            total, estimate = _count_matching(conn, jobs, where)
    last = rows[-1] if rows else None
    next_cursor = _encode_cursor([last[name], last["job_id"]]) if has_more and last else None
    return JobPage(
        [_summary(row) for row in rows], total, limit, offset, estimate, has_more, next_cursor
    )


def _only_counted_filters(filters: JobFilters) -> bool:
    return all(
        not getattr(filters, f.name) or f.name in _COUNTED_FILTERS
        for f in dataclasses.fields(filters)
    )


def _counted_total(conn: sa.Connection, filters: JobFilters) -> int:
    """Jobs of these statuses and dataset, from the trigger-kept counts (exact, one index)."""
    c = job_status_counts.c
    stmt = sa.select(sa.func.coalesce(sa.func.sum(c.jobs), 0))
    if filters.statuses:
        stmt = stmt.where(c.status.in_([JobStatus(s).value for s in filters.statuses]))
    if filters.dataset is not None:
        stmt = stmt.where(c.dataset == filters.dataset)
    return int(conn.execute(stmt).scalar_one())


def _keyset_rows(
    conn: sa.Connection,
    name: str,
    descending: bool,
    where: list[sa.ColumnElement[bool]],
    limit: int,
    after: list[Any] | None,
) -> list[sa.RowMapping]:
    """Up to `limit` rows after the key `after` in (column, job_id) order, NULLs last.

    The ORDER BY names no NULLS clause: PostgreSQL reads a plain ASC or DESC straight off the
    (column, job_id) index, but not NULLS LAST on a DESC (a sort of every match). So a
    nullable column is read in two steps: its values, then the rows without one.
    """
    column, job_id = jobs.c[name], jobs.c.job_id
    order = [column.desc(), job_id.desc()] if descending else [column.asc(), job_id.asc()]
    nullable = name in _NULLABLE_SORTS
    rows: list[sa.RowMapping] = []
    if after is None or after[0] is not None:
        valued = [*where, column.is_not(None)] if nullable else list(where)
        if after is not None:
            valued.append(_after(column, job_id, after[0], after[1], descending))
        stmt = sa.select(jobs).where(*valued).order_by(*order).limit(limit)
        rows = list(conn.execute(stmt).mappings().all())
    if nullable and len(rows) < limit:
        unvalued = [*where, column.is_(None)]
        if after is not None and after[0] is None:
            unvalued.append(job_id < after[1] if descending else job_id > after[1])
        stmt = sa.select(jobs).where(*unvalued).order_by(order[1]).limit(limit - len(rows))
        rows += conn.execute(stmt).mappings().all()
    return rows


def _offset_rows(
    conn: sa.Connection,
    name: str,
    descending: bool,
    where: list[sa.ColumnElement[bool]],
    limit: int,
    offset: int,
) -> list[sa.RowMapping]:
    """Up to `limit` rows after skipping `offset`, NULLs last (small pages only: MAX_OFFSET)."""
    column = jobs.c[name]
    if name in _NULLABLE_SORTS:
        order = [_order(column, descending), _order(jobs.c.job_id, descending)]
    else:  # NOT NULL: a plain direction, which PostgreSQL reads off the index
        order = [
            column.desc() if descending else column.asc(),
            jobs.c.job_id.desc() if descending else jobs.c.job_id.asc(),
        ]
    stmt = sa.select(jobs).where(*where).order_by(*order).limit(limit).offset(offset)
    return list(conn.execute(stmt).mappings().all())


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
