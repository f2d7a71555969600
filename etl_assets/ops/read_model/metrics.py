"""Aggregates over the ledger: counts by status, retries, failure rates, durations, queue
depth, stuck jobs and recent failures (`metrics`, the API's /v1/metrics and `etl jobs stats`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import UTCDateTime, is_postgres, read_connection, utcnow
from etl_assets.ledger.models import ErrorType, JobStatus
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ledger.schema import (
    job_finished_minutes,
    job_retry_totals,
    job_status_counts,
    jobs,
    quarantined_row_counts,
)
from etl_assets.ops.read_model.common import (
    DEFAULT_DAGSTER_UI_URL,
    _built,
    _epoch,
    _seconds,
    run_url,
)


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
    # Failed jobs of the window that ran out of attempts (the alert rule retry_exhaustion).
    dead_lettered_in_window: int = 0
    # (completed, failed, dead-lettered) over the last hour, what the alert rules count,
    # read in the same statement when the window is another (None: the window is the hour).
    finished_last_hour: tuple[int, int, int] | None = None


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
    """Counts by status, retries, failure rates, durations, queue depth and stuck jobs.

    Every figure is read from a trigger-kept count or an index, never a scan of the ledger:
    the counts from `job_status_counts` and `quarantined_row_counts`, the window's figures
    from `job_finished_minutes` (on SQLite from `ix_jobs_completed_figures`), the retries
    from the retried jobs' partial index.
    """
    with read_connection(engine) as conn:
        return read_metrics(
            conn,
            stuck_after_seconds=stuck_after_seconds,
            window_seconds=window_seconds,
            recent_failures=recent_failures,
            dagster_ui_url=dagster_ui_url,
            now=now,
        )


def read_metrics(
    conn: sa.Connection,
    *,
    stuck_after_seconds: int,
    window_seconds: int = 24 * 3600,
    recent_failures: int = 10,
    dagster_ui_url: str | None = DEFAULT_DAGSTER_UI_URL,
    now: dt.datetime | None = None,
) -> Metrics:
    """`metrics` on a connection the caller holds (readiness reads its schema check and the
    metrics on one). Four statements: every single figure in one, then the queue depth, the
    stuck jobs and the recent failures (none when `recent_failures` is 0)."""
    now = now or utcnow()
    since = now - dt.timedelta(seconds=window_seconds)
    params = _window_params(conn, since)
    # The alert rules count the last hour: read it with the window's figures (one round trip
    # and one plan, where a second statement cost about 2 ms on a 1M-job ledger).
    with_hour = window_seconds != HOUR_SECONDS
    if with_hour:
        params |= _window_params(conn, now - dt.timedelta(seconds=HOUR_SECONDS), HOUR)
    name = "figures+hour" if with_hour else "figures"
    row = conn.execute(
        _built(conn, name, lambda c: _figures_statement(c, with_hour=with_hour)), params
    ).one()
    counts = {s.value: int(getattr(row, f"n_{s.value}")) for s in JobStatus}
    total_jobs = sum(counts.values())
    completed, failed, exhausted = _finished(row)
    timed = int(row.j_timed) + int(row.m_timed)
    work_seconds = float(row.j_work) + int(row.m_work_ms) / 1000
    depth = _queue_depth(conn, now)
    stuck = _stuck_jobs(conn, now, stuck_after_seconds, dagster_ui_url)
    failures = _recent_failures(conn, recent_failures, dagster_ui_url) if recent_failures else []
    total_retries = int(row.total_retries)
    return Metrics(
        generated_at=now,
        window_seconds=window_seconds,
        counts_by_status=counts,
        total_jobs=total_jobs,
        retry=RetryStats(
            jobs_retried=int(row.jobs_retried),
            total_retries=total_retries,
            avg_retries_per_job=round(total_retries / total_jobs, 3) if total_jobs else 0.0,
            max_retries=int(row.max_retries or 0),
        ),
        completed_in_window=completed,
        failed_in_window=failed,
        failure_rate=_rate(failed, completed),
        failure_rate_all_time=_rate(counts["failed"], counts["completed"]),
        avg_duration_seconds=round(work_seconds / timed, 3) if timed else None,
        rows_loaded_in_window=int(row.j_rows) + int(row.m_rows),
        pending_total=sum(d.pending for d in depth),
        queue_depth=depth,
        stuck_after_seconds=stuck_after_seconds,
        stuck_jobs=stuck,
        recent_failures=failures,
        quarantined_rows_open=int(row.open_rows),
        dead_lettered_in_window=exhausted,
        finished_last_hour=_finished(row, HOUR) if with_hour else None,
    )


def _finished(row: Any, prefix: str = "") -> tuple[int, int, int]:
    """(completed, failed, failed out of attempts) of a window's figures in `row`: its head
    from the jobs plus its kept minutes (`_window_figures`)."""

    def both(name: str) -> int:
        return int(getattr(row, f"{prefix}j_{name}")) + int(getattr(row, f"{prefix}m_{name}"))

    return both("completed"), both("failed"), both("exhausted")


HOUR_SECONDS = 3600
HOUR = "h_"  # the prefix of the last hour's figures beside another window's
# Time bounds as bind parameters, so each statement is built once per dialect (`_built`):
# building these statements cost about as much as running them.
_NOW = sa.bindparam("now", type_=UTCDateTime)
_STALE_BEFORE = sa.bindparam("stale_before", type_=UTCDateTime)


def _window_params(
    conn: sa.Connection, since: dt.datetime, prefix: str = ""
) -> dict[str, dt.datetime]:
    """The bounds of `_window_figures(conn, prefix)` for a window from `since`."""
    split = minute_split(conn, since)
    bounds = {"since": since} if split is None else {"since": since, "split": split}
    return {f"{prefix}{name}": value for name, value in bounds.items()}


def _figures_statement(
    conn: sa.Connection, *, with_hour: bool = False
) -> sa.Select[tuple[object, ...]]:
    """One row of every single figure: one-row aggregates over the counts tables, the top
    entry of ix_jobs_retry_count, the window's finished jobs (`_window_figures`: the kept
    minutes, and the jobs of the window's first part-minute off ix_jobs_completed_figures
    and ix_jobs_status_completed), joined on true. One statement instead of six: at a few
    hundred microseconds a round trip, the round trips were most of what the hour's metrics
    cost."""
    c = job_status_counts.c
    counts = sa.select(
        *(
            sa.func.coalesce(sa.func.sum(c.jobs).filter(c.status == s.value), 0).label(
                f"n_{s.value}"
            )
            for s in JobStatus
        )
    ).subquery("counts")
    t = job_retry_totals.c
    # Aggregates, so a missing row (after a TRUNCATE) still gives one row of zeros.
    retries = (
        sa.select(
            sa.func.coalesce(sa.func.max(t.jobs_retried), 0).label("jobs_retried"),
            sa.func.coalesce(sa.func.max(t.total_retries), 0).label("total_retries"),
        )
        .where(t.id == 1)
        .subquery("retries")
    )
    most = (
        sa.select(sa.func.max(jobs.c.retry_count).label("max_retries"))
        .where(jobs.c.retry_count > 0)
        .subquery("most")
    )
    window = _window_figures(conn)
    if with_hour:
        window += _window_figures(conn, HOUR)
    q = quarantined_row_counts.c
    open_rows = (
        sa.select(sa.func.coalesce(sa.func.sum(q.rows), 0).label("open_rows"))
        .where(q.status == RowStatus.QUARANTINED.value)
        .subquery("open_rows")
    )
    return _joined([counts, retries, most, *window, open_rows])


def minute_split(conn: sa.Connection, since: dt.datetime) -> dt.datetime | None:
    """Where the trigger-kept minutes of `job_finished_minutes` take over from the jobs
    themselves for a window from `since`: its first whole minute on PostgreSQL (the jobs
    before it, under a minute of them, are read from the ledger's index), None on SQLite
    (no minutes kept: the whole window is read from the jobs)."""
    if not is_postgres(conn):
        return None
    minute = since.replace(second=0, microsecond=0)
    return minute if minute == since else minute + dt.timedelta(minutes=1)


def _window_figures(conn: sa.Connection, prefix: str = "") -> list[sa.Subquery]:
    """One-row subqueries of the window's finished jobs: the kept minutes from the split on
    (`m_*`), and the jobs from `since` up to it (`j_*`; the whole window on SQLite). The
    bounds are the parameters `since` and `split` (`_window_params`). `prefix` starts every
    name (columns, subqueries, parameters), for a second window in the same statement."""
    kept = is_postgres(conn)
    since = sa.bindparam(f"{prefix}since", type_=UTCDateTime)
    split = sa.bindparam(f"{prefix}split", type_=UTCDateTime)
    in_head = [jobs.c.completed_at >= since]
    if kept:
        in_head.append(jobs.c.completed_at < split)
    duration = _epoch(conn, jobs.c.completed_at) - _epoch(conn, jobs.c.started_at)
    completed = jobs.c.status == JobStatus.COMPLETED.value
    head_completed = sa.select(
        sa.func.count().label(f"{prefix}j_completed"),
        sa.func.coalesce(sa.func.sum(jobs.c.rows_loaded), 0).label(f"{prefix}j_rows"),
        sa.func.count(jobs.c.started_at).label(f"{prefix}j_timed"),
        sa.func.coalesce(sa.func.sum(duration), 0.0).label(f"{prefix}j_work"),
    ).where(completed, *in_head)
    # A failed job's completed_at is when it failed, so ix_jobs_status_completed holds them.
    exhausted = jobs.c.error_type == ErrorType.TRANSIENT_EXHAUSTED.value
    head_failed = sa.select(
        sa.func.count().label(f"{prefix}j_failed"),
        sa.func.count().filter(exhausted).label(f"{prefix}j_exhausted"),
    ).where(jobs.c.status == JobStatus.FAILED.value, *in_head)
    m = job_finished_minutes.c
    is_completed = m.status == JobStatus.COMPLETED.value
    is_failed = m.status == JobStatus.FAILED.value

    def total(column: sa.ColumnElement[int], where: sa.ColumnElement[bool], name: str) -> Any:
        return sa.func.coalesce(sa.func.sum(column).filter(where), 0).label(prefix + name)

    minutes = sa.select(
        total(m.jobs, is_completed, "m_completed"),
        total(m.rows_loaded, is_completed, "m_rows"),
        total(m.timed_jobs, is_completed, "m_timed"),
        total(m.work_ms, is_completed, "m_work_ms"),
        total(m.jobs, is_failed, "m_failed"),
        total(m.exhausted, is_failed, "m_exhausted"),
    )
    # On SQLite no minute is kept, and none is read: the jobs are the whole window.
    minutes = minutes.where(m.minute >= split) if kept else minutes.where(sa.false())
    return [
        head_completed.subquery(f"{prefix}head_completed"),
        head_failed.subquery(f"{prefix}head_failed"),
        minutes.subquery(f"{prefix}minutes"),
    ]


def status_counts(conn: sa.Connection) -> dict[str, int]:
    """Jobs per status (every status, 0 when none), from the trigger-kept counts."""
    counts = {s.value: 0 for s in JobStatus}
    c = job_status_counts.c
    for row in conn.execute(sa.select(c.status, sa.func.sum(c.jobs).label("n")).group_by(c.status)):
        counts[row.status] = int(row.n)
    return counts


def finished_in_window(conn: sa.Connection, since: dt.datetime) -> tuple[int, int, int]:
    """(jobs completed, failed, and failed out of attempts since `since`), in one statement
    (the kept minutes and the jobs before the first of them): the alert rules' hour when
    the metrics' window is another."""
    statement = _built(conn, "finished", lambda c: _joined(_window_figures(c)))
    return _finished(conn.execute(statement, _window_params(conn, since)).one())


def _joined(parts: list[sa.Subquery]) -> sa.Select[tuple[object, ...]]:
    """The one row of one-row subqueries, in one statement (not a round trip each): every
    part a CTE, every figure a scalar subquery of its part. Joined on true instead, the
    parts made PostgreSQL's planner search the join orders of up to ten one-row relations:
    about 3 of the 4.5 ms the metrics' statement took at 1M jobs, planning included."""
    figures = []
    for part in parts:
        cte = part.element.cte(part.name)
        figures += [sa.select(column).scalar_subquery().label(column.name) for column in cte.c]
    return sa.select(*figures)


def _queue_depth(conn: sa.Connection, now: dt.datetime) -> list[QueueDepth]:
    stmt = _built(conn, "queue_depth", lambda _: _queue_depth_statement())
    return [
        QueueDepth(int(r.priority), int(r.pending), int(r.due))
        for r in conn.execute(stmt, {"now": now})
    ]


def _queue_depth_statement() -> sa.Select[tuple[int, int, int]]:
    due = sa.or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= _NOW)
    return (
        sa.select(
            jobs.c.priority,
            sa.func.count().label("pending"),
            sa.func.count().filter(due).label("due"),
        )
        .where(jobs.c.status == JobStatus.PENDING.value)
        .group_by(jobs.c.priority)
        .order_by(jobs.c.priority.desc())
    )


def stuck_condition(
    stale_before: dt.datetime | sa.BindParameter[dt.datetime],
) -> sa.ColumnElement[bool]:
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
    stmt = _built(conn, "stuck", lambda _: _stuck_statement())
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
        for r in conn.execute(stmt, {"stale_before": stale_before}).mappings()
    ]


def _stuck_statement() -> sa.Select[tuple[object, ...]]:
    # The columns shown, not the whole row (tracebacks, checkpoints and metrics are JSON).
    c = jobs.c
    return (
        sa.select(c.job_id, c.title, c.run_id, c.attempts, c.last_heartbeat_at, c.updated_at)
        .where(stuck_condition(_STALE_BEFORE))
        .order_by(c.last_heartbeat_at.asc().nulls_first(), c.job_id)
        .limit(100)
    )


def _recent_failures(
    conn: sa.Connection, limit: int, dagster_ui_url: str | None
) -> list[RecentFailure]:
    c = jobs.c
    stmt = _built(
        conn,
        f"recent_failures_{limit}",
        lambda _: sa.select(
            c.job_id, c.title, c.dataset, c.error_type, c.error_message, c.completed_at,
            c.updated_at, c.attempts, c.retry_count, c.run_id,
        )
        .where(c.status == JobStatus.FAILED.value)
        .order_by(c.completed_at.desc(), c.job_id.desc())
        .limit(limit),
    )  # fmt: skip
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


@dataclass(frozen=True)
class CompletedSample:
    """One recently completed job, for the Prometheus histograms: how long its last attempt
    ran (None when it has no start) and how many rows it loaded."""

    duration_seconds: float | None
    rows_loaded: int


def recent_completions(
    engine: Engine,
    *,
    window_seconds: int = 3600,
    limit: int = 1000,
    now: dt.datetime | None = None,
) -> list[CompletedSample]:
    """The last `limit` jobs completed in the last `window_seconds`, newest first.

    Bounded both ways so a scrape reads at most `limit` entries of
    `ix_jobs_completed_figures` (which holds every column used: no heap visit).
    """
    since = (now or utcnow()) - dt.timedelta(seconds=window_seconds)
    stmt = (
        sa.select(jobs.c.started_at, jobs.c.completed_at, jobs.c.rows_loaded)
        .where(jobs.c.status == JobStatus.COMPLETED.value, jobs.c.completed_at >= since)
        .order_by(jobs.c.status.desc(), jobs.c.completed_at.desc())
        .limit(limit)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).all()
    return [
        CompletedSample(_seconds(r.completed_at, r.started_at), int(r.rows_loaded or 0))
        for r in rows
    ]
