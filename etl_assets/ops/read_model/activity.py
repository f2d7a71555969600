"""Uploads and activity over time: the jobs running now and recently changed, with their
progress (`uploads`), and processing and error rates per time bucket (`activity`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import UTCDateTime, read_connection, utcnow
from etl_assets.ledger.models import AttemptOutcome, JobStatus
from etl_assets.ledger.schema import job_attempts, job_finished_minutes, jobs
from etl_assets.ops.read_model.common import _bucket, _built, _check_page, _epoch
from etl_assets.ops.read_model.jobs import progress_of
from etl_assets.ops.read_model.metrics import minute_split, status_counts

# The window's start as a bind parameter, so each statement is built once per dialect and
# bucket width (`_built`); the width stays a literal (see `_bucket`).
_SINCE = sa.bindparam("since", type_=UTCDateTime)


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
    """Processing jobs first, then the jobs changed in the last `recent_seconds`, newest first.

    Two bounded index reads rather than one OR (which PostgreSQL answers by collecting every
    job of the window, then sorting): the processing jobs off (status, ...), then the newest
    others off (updated_at, job_id) until the page is full. The counts are the trigger-kept
    ones.
    """
    _check_page(limit, 0)
    now = now or utcnow()
    active = jobs.c.status == JobStatus.PROCESSING.value
    newest = [jobs.c.updated_at.desc(), jobs.c.job_id.desc()]
    with read_connection(engine) as conn:
        rows = list(
            conn.execute(sa.select(jobs).where(active).order_by(*newest).limit(limit)).mappings()
        )
        if len(rows) < limit:
            others = (
                sa.select(jobs)
                .where(
                    jobs.c.updated_at >= now - dt.timedelta(seconds=recent_seconds),
                    jobs.c.status != JobStatus.PROCESSING.value,
                )
                .order_by(*newest)
                .limit(limit - len(rows))
            )
            rows += conn.execute(others).mappings()
        by_status = status_counts(conn)
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


@dataclass(frozen=True)
class TimeBucket:
    """What happened in one time bucket.

    `rows_per_second` is the rate of work: the rows loaded by the jobs that completed in the
    bucket over the seconds those jobs ran (`work_seconds`, each from the start of its last
    attempt to its completion), None when no job completed. A 50,000-row job that loaded in
    3 s reads ~16,000 rows/s, whatever the bucket's width. `rows_per_bucket_second` is the
    same rows over the bucket's width (the throughput averaged over the bucket).
    `error_rate` is failed (or timed-out) attempts over attempts that ended in the bucket,
    None when none ended.
    """

    start: dt.datetime
    jobs_completed: int
    jobs_failed: int
    attempts_ended: int
    attempts_failed: int
    rows_loaded: int
    rows_per_second: float | None
    error_rate: float | None
    work_seconds: float = 0.0
    rows_per_bucket_second: float = 0.0


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
    blank = {"completed": 0, "failed": 0, "rows": 0, "ended": 0, "attempts_failed": 0, "work": 0}
    acc: dict[int, dict[str, float]] = {i: dict(blank) for i in range(first, last + 1)}
    with read_connection(engine) as conn:
        _add_job_buckets(conn, acc, since, bucket_seconds)
        _add_attempt_buckets(conn, acc, since, bucket_seconds)
    buckets = [
        TimeBucket(
            start=dt.datetime.fromtimestamp(i * bucket_seconds, dt.UTC),
            jobs_completed=int(v["completed"]),
            jobs_failed=int(v["failed"]),
            attempts_ended=int(v["ended"]),
            attempts_failed=int(v["attempts_failed"]),
            rows_loaded=int(v["rows"]),
            rows_per_second=_work_rate(v["rows"], v["work"], int(v["completed"])),
            error_rate=round(v["attempts_failed"] / v["ended"], 4) if v["ended"] else None,
            work_seconds=round(v["work"], 3),
            rows_per_bucket_second=round(v["rows"] / bucket_seconds, 3),
        )
        for i, v in sorted(acc.items())
    ]
    return TimeSeries(bucket_seconds, since, buckets)


def _work_rate(rows: float, work_seconds: float, completed: int) -> float | None:
    if not completed:
        return None
    # Milliseconds, as stored: SQLite's julianday arithmetic leaves noise below them.
    work_seconds = round(work_seconds, 3)
    if work_seconds <= 0:  # finished within the clock's resolution: no rate to tell
        return None
    return round(rows / work_seconds, 3)


def _add_job_buckets(
    conn: sa.Connection, acc: dict[int, dict[str, float]], since: dt.datetime, width: int
) -> None:
    # Buckets of whole minutes start on a minute (`since` is a multiple of the width): the
    # trigger-kept minutes hold them exactly, ~1,440 rows a day instead of each job.
    if minute_split(conn, since) == since and width % 60 == 0:
        _add_minute_buckets(conn, acc, since, width)
        return
    completed = _built(conn, f"completed_buckets_{width}", lambda c: _completed_buckets(c, width))
    for bucket, n, rows, work in _rows(conn, completed, since):
        figures = acc.get(int(bucket))
        if figures is not None:
            figures["completed"] += int(n)
            figures["rows"] += int(rows or 0)
            figures["work"] += max(float(work or 0), 0.0)
    failed = _built(conn, f"failed_buckets_{width}", lambda c: _failed_buckets(c, width))
    for bucket, n in _rows(conn, failed, since):
        figures = acc.get(int(bucket))
        if figures is not None:
            figures["failed"] += int(n)


def _completed_buckets(conn: sa.Connection, width: int) -> Any:
    done = _bucket(conn, jobs.c.completed_at, width).label("bucket")
    # Seconds each job ran; every column is in ix_jobs_completed_figures.
    ran = sa.func.coalesce(_epoch(conn, jobs.c.completed_at) - _epoch(conn, jobs.c.started_at), 0)
    return (
        sa.select(
            done,
            sa.func.count().label("n"),
            sa.func.sum(jobs.c.rows_loaded).label("rows"),
            sa.func.sum(ran).label("work"),
        )
        .where(jobs.c.status == JobStatus.COMPLETED.value, jobs.c.completed_at >= _SINCE)
        .group_by(done)
    )


def _failed_buckets(conn: sa.Connection, width: int) -> Any:
    # A failed job's completed_at is when it failed (ix_jobs_status_completed answers this).
    failed = _bucket(conn, jobs.c.completed_at, width).label("bucket")
    return (
        sa.select(failed, sa.func.count().label("n"))
        .where(jobs.c.status == JobStatus.FAILED.value, jobs.c.completed_at >= _SINCE)
        .group_by(failed)
    )


def _rows(conn: sa.Connection, statement: Any, since: dt.datetime) -> Iterator[tuple[Any, ...]]:
    """The rows of a bucket statement over the window from `since`, as plain tuples."""
    return cast(Iterator[tuple[Any, ...]], iter(conn.execute(statement, {"since": since})))


def _add_minute_buckets(
    conn: sa.Connection, acc: dict[int, dict[str, float]], since: dt.datetime, width: int
) -> None:
    stmt = _built(conn, f"minute_buckets_{width}", lambda c: _minute_buckets(c, width))
    for bucket, completed, rows, work_ms, failed in _rows(conn, stmt, since):
        figures = acc.get(int(bucket))
        if figures is not None:
            figures["completed"] += int(completed or 0)
            figures["rows"] += int(rows or 0)
            figures["work"] += max(int(work_ms or 0) / 1000, 0.0)
            figures["failed"] += int(failed or 0)


def _minute_buckets(conn: sa.Connection, width: int) -> Any:
    m = job_finished_minutes.c
    bucket = _bucket(conn, m.minute, width).label("bucket")
    completed = m.status == JobStatus.COMPLETED.value
    # One row per bucket (the statuses as filtered sums): half the rows to fetch.
    return (
        sa.select(
            bucket,
            sa.func.sum(m.jobs).filter(completed).label("completed"),
            sa.func.sum(m.rows_loaded).filter(completed).label("rows"),
            sa.func.sum(m.work_ms).filter(completed).label("work_ms"),
            sa.func.sum(m.jobs).filter(m.status == JobStatus.FAILED.value).label("failed"),
        )
        .where(m.minute >= _SINCE)
        .group_by(bucket)
    )


def _add_attempt_buckets(
    conn: sa.Connection, acc: dict[int, dict[str, float]], since: dt.datetime, width: int
) -> None:
    stmt = _built(conn, f"attempt_buckets_{width}", lambda c: _attempt_buckets(c, width))
    for bucket, n, bad in _rows(conn, stmt, since):
        figures = acc.get(int(bucket))
        if figures is not None:
            figures["ended"] += int(n)
            figures["attempts_failed"] += int(bad)


def _attempt_buckets(conn: sa.Connection, width: int) -> Any:
    bad = [AttemptOutcome.FAILED.value, AttemptOutcome.TIMED_OUT.value]
    ended = _bucket(conn, job_attempts.c.ended_at, width).label("bucket")
    return (
        sa.select(
            ended,
            sa.func.count().label("n"),
            sa.func.count().filter(job_attempts.c.outcome.in_(bad)).label("bad"),
        )
        .where(
            job_attempts.c.ended_at >= _SINCE,
            # A cancellation is a person's choice, not an error or a success.
            job_attempts.c.outcome != AttemptOutcome.CANCELLED.value,
        )
        .group_by(ended)
    )
