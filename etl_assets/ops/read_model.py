"""Read queries over the jobs ledger for operators: lists, details, progress, metrics.

Plain functions over SQLAlchemy Core that return dataclasses, so the ops API, its dashboard
and the `etl` command line show the same figures. Every query runs on SQLite and PostgreSQL;
the few expressions that differ (seconds since the epoch, time buckets) are built by
`_epoch` and `_bucket`. Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import is_postgres, read_connection, utcnow
from etl_assets.ledger.errors import JobNotFound
from etl_assets.ledger.models import AttemptOutcome, ErrorType, Job, JobStatus
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ledger.schema import job_attempts, jobs, quarantined_rows

DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
MAX_PAGE = 500
UNIX_EPOCH_JULIAN_DAY = 2440587.5  # SQLite's julianday() of 1970-01-01T00:00:00Z


def run_url(dagster_ui_url: str | None, run_id: str | None) -> str | None:
    """The Dagster UI page of a run, or None when there is no run (or no UI configured)."""
    if not run_id or not dagster_ui_url:
        return None
    return f"{dagster_ui_url.rstrip('/')}/runs/{run_id}"


# ------------------------------------------------------------------------------ jobs


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


def _seconds(later: dt.datetime | None, earlier: dt.datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(max((later - earlier).total_seconds(), 0.0), 3)


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


def _order(column: sa.ColumnElement[Any], descending: bool) -> sa.ColumnElement[Any]:
    # NULLS LAST either way, so SQLite and PostgreSQL put unfinished jobs in the same place.
    return (column.desc() if descending else column.asc()).nulls_last()


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, not {offset}")


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


# ------------------------------------------------------------------------------ uploads


@dataclass(frozen=True)
class Upload:
    """A job seen as an upload in progress (or recently finished)."""

    job_id: str
    title: str
    source_name: str
    dataset: str
    status: JobStatus
    rows_processed: int
    rows_total: int | None
    percent_complete: float | None
    started_at: dt.datetime | None
    elapsed_seconds: float | None
    rows_per_second: float | None
    eta_seconds: float | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    error_message: str | None


@dataclass(frozen=True)
class UploadsOverview:
    """Active (processing) and waiting (pending) counts, and the active and recent jobs."""

    active_uploads: int
    pending_uploads: int
    recent_uploads: list[Upload]


def uploads(
    engine: Engine,
    *,
    recent_seconds: int = 24 * 3600,
    limit: int = 50,
    now: dt.datetime | None = None,
) -> UploadsOverview:
    """Processing jobs first, then the jobs changed in the last `recent_seconds`, newest first."""
    _check_page(limit, 0)
    now = now or utcnow()
    active = jobs.c.status == JobStatus.PROCESSING.value
    stmt = (
        sa.select(jobs)
        .where(sa.or_(active, jobs.c.updated_at >= now - dt.timedelta(seconds=recent_seconds)))
        .order_by(sa.case((active, 0), else_=1), jobs.c.updated_at.desc(), jobs.c.job_id.desc())
        .limit(limit)
    )
    counts = sa.select(jobs.c.status, sa.func.count().label("n")).where(
        jobs.c.status.in_([JobStatus.PROCESSING.value, JobStatus.PENDING.value])
    )
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
        by_status = {r.status: int(r.n) for r in conn.execute(counts.group_by(jobs.c.status))}
    recent = []
    for row in rows:
        progress = progress_of(row, now)
        recent.append(
            Upload(
                job_id=row["job_id"],
                title=row["title"],
                source_name=row["source_name"],
                dataset=row["dataset"],
                status=JobStatus(row["status"]),
                rows_processed=progress.rows_processed,
                rows_total=progress.rows_total,
                percent_complete=progress.percent_complete,
                started_at=row["started_at"],
                elapsed_seconds=progress.elapsed_seconds,
                rows_per_second=progress.rows_per_second,
                eta_seconds=progress.eta_seconds,
                created_at=row["created_at"],
                completed_at=row["completed_at"],
                error_message=row["error_message"],
            )
        )
    return UploadsOverview(
        active_uploads=by_status.get(JobStatus.PROCESSING.value, 0),
        pending_uploads=by_status.get(JobStatus.PENDING.value, 0),
        recent_uploads=recent,
    )


# ------------------------------------------------------------------------------ failed rows


class FailedRowSort(enum.StrEnum):
    """Orders `list_failed_rows` accepts; a leading '-' means descending."""

    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    JOB_ID = "job_id"
    JOB_ID_DESC = "-job_id"


@dataclass(frozen=True)
class FailedRowFilters:
    """Which quarantined rows to list; `status` None means every status."""

    job_id: str | None = None
    dataset: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    status: RowStatus | None = RowStatus.QUARANTINED
    row_id: int | None = None


@dataclass(frozen=True)
class FailedRow:
    """A row a job could not load: where it came from, its raw values and why."""

    id: int
    job_id: str
    dataset: str
    source_name: str
    row_number: int
    raw_row: dict[str, Any]
    reason: str
    stage: str
    status: RowStatus
    retry_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True)
class FailedRowPage:
    """A page of failed rows and how many match in all."""

    items: list[FailedRow]
    total: int
    limit: int
    offset: int


def list_failed_rows(
    engine: Engine,
    filters: FailedRowFilters | None = None,
    *,
    sort: FailedRowSort | str = FailedRowSort.CREATED_AT_DESC,
    limit: int = 50,
    offset: int = 0,
) -> FailedRowPage:
    """A page of quarantined rows with their job's dataset and file name."""
    _check_page(limit, offset)
    filters = filters or FailedRowFilters()
    key = FailedRowSort(sort)
    descending = key.value.startswith("-")
    q = quarantined_rows.c
    where: list[sa.ColumnElement[bool]] = []
    if filters.row_id is not None:
        where.append(q.id == filters.row_id)
    if filters.job_id is not None:
        where.append(q.job_id == filters.job_id)
    if filters.dataset is not None:
        where.append(jobs.c.dataset == filters.dataset)
    if filters.created_from is not None:
        where.append(q.created_at >= filters.created_from)
    if filters.created_to is not None:
        where.append(q.created_at < filters.created_to)
    if filters.status is not None:
        where.append(q.status == RowStatus(filters.status).value)
    joined = quarantined_rows.join(jobs, jobs.c.job_id == q.job_id)
    order = (
        [_order(q.created_at, descending), _order(q.id, descending)]
        if key.value.lstrip("-") == "created_at"
        else [_order(q.job_id, descending), q.row_number.asc()]
    )
    stmt = (
        sa.select(quarantined_rows, jobs.c.dataset, jobs.c.source_name)
        .select_from(joined)
        .where(*where)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    with read_connection(engine) as conn:
        count = sa.select(sa.func.count()).select_from(joined).where(*where)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(stmt).mappings().all()
    items = [
        FailedRow(
            id=int(r["id"]),
            job_id=r["job_id"],
            dataset=r["dataset"],
            source_name=r["source_name"],
            row_number=int(r["row_number"]),
            raw_row=dict(r["raw_row"]),
            reason=r["reason"],
            stage=r["stage"],
            status=RowStatus(r["status"]),
            retry_count=r["retry_count"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            resolved_at=r["resolved_at"],
        )
        for r in rows
    ]
    return FailedRowPage(items, total, limit, offset)


def failed_row(engine: Engine, row_id: int) -> FailedRow | None:
    """One quarantined row, whatever its status; None when no row has this id."""
    page = list_failed_rows(engine, FailedRowFilters(status=None, row_id=row_id), limit=1)
    return page.items[0] if page.items else None


# ------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class RetryStats:
    """Retries over all jobs: how many jobs needed one, how many in all, mean and max per job."""

    jobs_retried: int
    total_retries: int
    avg_retries_per_job: float
    max_retries: int


@dataclass(frozen=True)
class RecentFailure:
    """A failed job (dead letter) and why."""

    job_id: str
    title: str
    dataset: str
    error_type: ErrorType | None
    error_message: str | None
    failed_at: dt.datetime
    attempts: int
    retry_count: int
    run_id: str | None
    dagster_run_url: str | None


@dataclass(frozen=True)
class QueueDepth:
    """Pending jobs of one priority; `due` of them may start now (the rest wait for a backoff)."""

    priority: int
    pending: int
    due: int


@dataclass(frozen=True)
class StuckJob:
    """A processing job with no heartbeat for longer than the stuck threshold."""

    job_id: str
    title: str
    run_id: str | None
    attempts: int
    last_heartbeat_at: dt.datetime | None
    heartbeat_age_seconds: float
    dagster_run_url: str | None


@dataclass(frozen=True)
class Metrics:
    """Aggregates over the ledger. Window figures cover the last `window_seconds`.

    `failure_rate` is failed / (completed + failed) over the jobs that finished in the window
    (a failed job counts at its last update); `avg_duration_seconds` is the mean time from the
    start of the last attempt to completion of the jobs completed in the window.
    """

    generated_at: dt.datetime
    window_seconds: int
    counts_by_status: dict[str, int]
    total_jobs: int
    retry: RetryStats
    completed_in_window: int
    failed_in_window: int
    failure_rate: float | None
    failure_rate_all_time: float | None
    avg_duration_seconds: float | None
    rows_loaded_in_window: int
    pending_total: int
    queue_depth: list[QueueDepth]
    stuck_after_seconds: int
    stuck_jobs: list[StuckJob]
    recent_failures: list[RecentFailure]
    quarantined_rows_open: int


def _epoch(conn: sa.Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, with fractions, on either dialect."""
    if is_postgres(conn):
        return sa.extract("epoch", column)
    return (sa.func.julianday(column) - UNIX_EPOCH_JULIAN_DAY) * 86400.0


def _bucket(
    conn: sa.Connection, column: sa.ColumnElement[Any], seconds: int
) -> sa.ColumnElement[Any]:
    """The index of the `seconds`-wide time bucket a timestamp falls in (epoch / seconds)."""
    # A literal, not a bind parameter: PostgreSQL must see the SELECT and GROUP BY
    # expressions as the same one.
    width: sa.ColumnElement[Any] = sa.literal_column(str(int(seconds)))
    if is_postgres(conn):
        return sa.func.floor(_epoch(conn, column) / width)
    # SQLite may lack floor(); the values are positive, so truncation is the floor.
    return sa.cast(_epoch(conn, column) / width, sa.Integer)


def _rate(failed: int, completed: int) -> float | None:
    finished = failed + completed
    return round(failed / finished, 4) if finished else None


def metrics(
    engine: Engine,
    *,
    stuck_after_seconds: int,
    window_seconds: int = 24 * 3600,
    recent_failures: int = 10,
    dagster_ui_url: str | None = DEFAULT_DAGSTER_UI_URL,
    now: dt.datetime | None = None,
) -> Metrics:
    """Counts by status, retries, failure rates, durations, queue depth and stuck jobs."""
    now = now or utcnow()
    since = now - dt.timedelta(seconds=window_seconds)
    with read_connection(engine) as conn:
        counts = {s.value: 0 for s in JobStatus}
        for row in conn.execute(
            sa.select(jobs.c.status, sa.func.count().label("n")).group_by(jobs.c.status)
        ):
            counts[row.status] = int(row.n)
        retry = _retry_stats(conn)
        completed, rows_loaded, avg_duration = _completed_in_window(conn, since)
        failed = int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    jobs.c.status == JobStatus.FAILED.value, jobs.c.completed_at >= since
                )
            ).scalar_one()
        )
        depth = _queue_depth(conn, now)
        stuck = _stuck_jobs(conn, now, stuck_after_seconds, dagster_ui_url)
        failures = _recent_failures(conn, recent_failures, dagster_ui_url)
        open_rows = conn.execute(
            sa.select(sa.func.count()).where(
                quarantined_rows.c.status == RowStatus.QUARANTINED.value
            )
        ).scalar_one()
    return Metrics(
        generated_at=now,
        window_seconds=window_seconds,
        counts_by_status=counts,
        total_jobs=sum(counts.values()),
        retry=retry,
        completed_in_window=completed,
        failed_in_window=failed,
        failure_rate=_rate(failed, completed),
        failure_rate_all_time=_rate(counts["failed"], counts["completed"]),
        avg_duration_seconds=avg_duration,
        rows_loaded_in_window=rows_loaded,
        pending_total=sum(d.pending for d in depth),
        queue_depth=depth,
        stuck_after_seconds=stuck_after_seconds,
        stuck_jobs=stuck,
        recent_failures=failures,
        quarantined_rows_open=int(open_rows),
    )


def _retry_stats(conn: sa.Connection) -> RetryStats:
    row = conn.execute(
        sa.select(
            sa.func.count().filter(jobs.c.retry_count > 0).label("retried"),
            sa.func.coalesce(sa.func.sum(jobs.c.retry_count), 0).label("total"),
            sa.func.coalesce(sa.func.max(jobs.c.retry_count), 0).label("most"),
            sa.func.count().label("jobs"),
        )
    ).one()
    jobs_count = int(row.jobs)
    return RetryStats(
        jobs_retried=int(row.retried),
        total_retries=int(row.total),
        avg_retries_per_job=round(int(row.total) / jobs_count, 3) if jobs_count else 0.0,
        max_retries=int(row.most),
    )


def _completed_in_window(conn: sa.Connection, since: dt.datetime) -> tuple[int, int, float | None]:
    duration = _epoch(conn, jobs.c.completed_at) - _epoch(conn, jobs.c.started_at)
    row = conn.execute(
        sa.select(
            sa.func.count().label("n"),
            sa.func.coalesce(sa.func.sum(jobs.c.rows_loaded), 0).label("rows"),
            sa.func.avg(duration).label("avg_duration"),
        ).where(jobs.c.status == JobStatus.COMPLETED.value, jobs.c.completed_at >= since)
    ).one()
    avg = None if row.avg_duration is None else round(float(row.avg_duration), 3)
    return int(row.n), int(row.rows), avg


def _queue_depth(conn: sa.Connection, now: dt.datetime) -> list[QueueDepth]:
    due = sa.or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= now)
    stmt = (
        sa.select(
            jobs.c.priority,
            sa.func.count().label("pending"),
            sa.func.count().filter(due).label("due"),
        )
        .where(jobs.c.status == JobStatus.PENDING.value)
        .group_by(jobs.c.priority)
        .order_by(jobs.c.priority.desc())
    )
    return [QueueDepth(int(r.priority), int(r.pending), int(r.due)) for r in conn.execute(stmt)]


def stuck_condition(stale_before: dt.datetime) -> sa.ColumnElement[bool]:
    """Processing, no heartbeat since `stale_before`, and no retry scheduled after it: the
    same test as the reaper's (`recovery.is_stale`)."""
    heartbeat = sa.func.coalesce(jobs.c.last_heartbeat_at, jobs.c.updated_at)
    return sa.and_(
        jobs.c.status == JobStatus.PROCESSING.value,
        heartbeat < stale_before,
        sa.or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at < stale_before),
    )


def _stuck_jobs(
    conn: sa.Connection, now: dt.datetime, stuck_after_seconds: int, dagster_ui_url: str | None
) -> list[StuckJob]:
    stale_before = now - dt.timedelta(seconds=stuck_after_seconds)
    stmt = (
        sa.select(jobs)
        .where(stuck_condition(stale_before))
        .order_by(jobs.c.last_heartbeat_at.asc().nulls_first(), jobs.c.job_id)
        .limit(100)
    )
    return [
        StuckJob(
            job_id=r["job_id"],
            title=r["title"],
            run_id=r["run_id"],
            attempts=r["attempts"],
            last_heartbeat_at=r["last_heartbeat_at"],
            heartbeat_age_seconds=_seconds(now, r["last_heartbeat_at"] or r["updated_at"]) or 0.0,
            dagster_run_url=run_url(dagster_ui_url, r["run_id"]),
        )
        for r in conn.execute(stmt).mappings()
    ]


def _recent_failures(
    conn: sa.Connection, limit: int, dagster_ui_url: str | None
) -> list[RecentFailure]:
    stmt = (
        sa.select(jobs)
        .where(jobs.c.status == JobStatus.FAILED.value)
        .order_by(jobs.c.completed_at.desc(), jobs.c.job_id.desc())
        .limit(limit)
    )
    return [
        RecentFailure(
            job_id=r["job_id"],
            title=r["title"],
            dataset=r["dataset"],
            error_type=ErrorType(r["error_type"]) if r["error_type"] else None,
            error_message=r["error_message"],
            failed_at=r["completed_at"] or r["updated_at"],
            attempts=r["attempts"],
            retry_count=r["retry_count"],
            run_id=r["run_id"],
            dagster_run_url=run_url(dagster_ui_url, r["run_id"]),
        )
        for r in conn.execute(stmt).mappings()
    ]


# ------------------------------------------------------------------------------ time series


@dataclass(frozen=True)
class TimeBucket:
    """What happened in one time bucket.

    `rows_per_second` is the rows loaded by the jobs that completed in the bucket over the
    bucket's width; `error_rate` is failed (or timed-out) attempts over attempts that ended
    in the bucket, None when none ended.
    """

    start: dt.datetime
    jobs_completed: int
    jobs_failed: int
    attempts_ended: int
    attempts_failed: int
    rows_loaded: int
    rows_per_second: float
    error_rate: float | None


@dataclass(frozen=True)
class TimeSeries:
    """Buckets of `bucket_seconds` from `start` up to now, oldest first, none missing."""

    bucket_seconds: int
    start: dt.datetime
    buckets: list[TimeBucket] = field(default_factory=list)


def activity(
    engine: Engine,
    *,
    window_seconds: int = 24 * 3600,
    bucket_seconds: int = 600,
    now: dt.datetime | None = None,
) -> TimeSeries:
    """Processing rate and error rate per bucket over the last `window_seconds`."""
    if bucket_seconds < 60 or window_seconds < bucket_seconds:
        raise ValueError("bucket_seconds must be at least 60 and no more than window_seconds")
    if window_seconds // bucket_seconds > 2000:
        raise ValueError("at most 2000 buckets: widen bucket_seconds or shorten the window")
    now = now or utcnow()
    first = int((now - dt.timedelta(seconds=window_seconds)).timestamp()) // bucket_seconds + 1
    last = int(now.timestamp()) // bucket_seconds
    since = dt.datetime.fromtimestamp(first * bucket_seconds, dt.UTC)
    blank = {"completed": 0, "failed": 0, "rows": 0, "ended": 0, "attempts_failed": 0}
    acc: dict[int, dict[str, int]] = {i: dict(blank) for i in range(first, last + 1)}
    with read_connection(engine) as conn:
        _add_job_buckets(conn, acc, since, bucket_seconds)
        _add_attempt_buckets(conn, acc, since, bucket_seconds)
    buckets = [
        TimeBucket(
            start=dt.datetime.fromtimestamp(i * bucket_seconds, dt.UTC),
            jobs_completed=v["completed"],
            jobs_failed=v["failed"],
            attempts_ended=v["ended"],
            attempts_failed=v["attempts_failed"],
            rows_loaded=v["rows"],
            rows_per_second=round(v["rows"] / bucket_seconds, 3),
            error_rate=round(v["attempts_failed"] / v["ended"], 4) if v["ended"] else None,
        )
        for i, v in sorted(acc.items())
    ]
    return TimeSeries(bucket_seconds, since, buckets)


def _add_job_buckets(
    conn: sa.Connection, acc: dict[int, dict[str, int]], since: dt.datetime, width: int
) -> None:
    done = _bucket(conn, jobs.c.completed_at, width).label("bucket")
    for r in conn.execute(
        sa.select(done, sa.func.count().label("n"), sa.func.sum(jobs.c.rows_loaded).label("rows"))
        .where(jobs.c.status == JobStatus.COMPLETED.value, jobs.c.completed_at >= since)
        .group_by(done)
    ):
        if int(r.bucket) in acc:
            acc[int(r.bucket)]["completed"] += int(r.n)
            acc[int(r.bucket)]["rows"] += int(r.rows or 0)
    # A failed job's completed_at is when it failed (ix_jobs_status_completed answers this).
    failed = _bucket(conn, jobs.c.completed_at, width).label("bucket")
    for r in conn.execute(
        sa.select(failed, sa.func.count().label("n"))
        .where(jobs.c.status == JobStatus.FAILED.value, jobs.c.completed_at >= since)
        .group_by(failed)
    ):
        if int(r.bucket) in acc:
            acc[int(r.bucket)]["failed"] += int(r.n)


def _add_attempt_buckets(
    conn: sa.Connection, acc: dict[int, dict[str, int]], since: dt.datetime, width: int
) -> None:
    bad = [AttemptOutcome.FAILED.value, AttemptOutcome.TIMED_OUT.value]
    ended = _bucket(conn, job_attempts.c.ended_at, width).label("bucket")
    stmt = (
        sa.select(
            ended,
            sa.func.count().label("n"),
            sa.func.count().filter(job_attempts.c.outcome.in_(bad)).label("bad"),
        )
        .where(
            job_attempts.c.ended_at >= since,
            # A cancellation is a person's choice, not an error or a success.
            job_attempts.c.outcome != AttemptOutcome.CANCELLED.value,
        )
        .group_by(ended)
    )
    for r in conn.execute(stmt):
        if int(r.bucket) in acc:
            acc[int(r.bucket)]["ended"] += int(r.n)
            acc[int(r.bucket)]["attempts_failed"] += int(r.bad)
