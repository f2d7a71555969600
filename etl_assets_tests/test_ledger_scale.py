"""The ledger stays fast when it is large: every query the dispatcher, the reaper, the CLI and
retention send is answered from an index (checked with EXPLAIN on PostgreSQL over a seeded
ledger), and the trigger-kept status counts always equal a real count.

The timings themselves (under 10 ms at 1,000,000 jobs) are printed by
benchmarks/bench_ledger_scale.py, not asserted here.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import Any

import sqlalchemy as sa
from conftest import emptied
from test_monitoring_docs import runs_on, sql_blocks

from etl_assets.db import create_engine, utcnow
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.ledger.schema import jobs
from etl_assets.ops import alerts, health
from etl_assets.ops import read_model as rm
from etl_assets.ops.retention import _candidates

SEEDED_JOBS = 100_000


def seed_finished_jobs(engine: sa.Engine, count: int, days: int = 90) -> None:
    """`count` finished jobs over the last `days` days (1 in 50 failed, 1 in 20 retried) plus
    a few pending and processing ones, written by PostgreSQL itself in one statement. A
    finished job was last updated when it finished, as the ledger does it."""
    step = days * 86_400 / count  # seconds between two jobs
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"""
            INSERT INTO jobs (job_id, title, dataset, source_uri, source_name, content_sha256,
                size_bytes, status, priority, attempts, retry_count, max_attempts, error_type,
                created_at, updated_at, completed_at, last_heartbeat_at)
            SELECT '01J' || lpad(n::text, 23, '0'), 'job ' || n, 'sales', '/s/' || n, n || '.csv',
                md5(n::text) || md5(n::text), 100,
                CASE WHEN n > {count} THEN (CASE WHEN mod(n, 2) = 0 THEN 'pending' ELSE 'processing'
                     END) WHEN mod(n, 50) = 0 THEN 'failed' ELSE 'completed' END,
                mod(n, 3), 1, CASE WHEN mod(n, 20) = 0 THEN 1 ELSE 0 END, 3,
                CASE WHEN n <= {count} AND mod(n, 50) = 0 THEN 'transient_exhausted' END,
                now() - ((({count} + 50 - n) * {step}) || ' seconds')::interval,
                CASE WHEN n <= {count}
                     THEN now() - ((({count} - n) * {step}) || ' seconds')::interval
                     ELSE now() END,
                CASE WHEN n <= {count}
                     THEN now() - ((({count} - n) * {step}) || ' seconds')::interval END,
                now()
            FROM generate_series(1, {count} + 40) AS n
            """
        )
        conn.exec_driver_sql("ANALYZE jobs")


def seed_quarantine_and_events(
    engine: sa.Engine, jobs_count: int, rows: int, events: int, days: int = 90
) -> None:
    """`rows` quarantined rows spread over the first `jobs_count` seeded jobs (1 in 10 since
    loaded by a row retry) and `events` handled load events, over the last `days` days, by
    set-based INSERT ... SELECT generate_series (10 M rows take minutes, not hours)."""
    row_step = days * 86_400 / max(rows, 1)
    event_step = days * 86_400 / max(events, 1)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"""
            INSERT INTO quarantined_rows (job_id, row_number, raw_row, reason, stage,
                retry_count, status, created_at, updated_at)
            SELECT '01J' || lpad((mod(n, {jobs_count}) + 1)::text, 23, '0'), n + 1,
                '{{"order_id": "x"}}', 'quantity: not a number', 'validate', 0,
                CASE WHEN mod(n, 10) = 0 THEN 'loaded' ELSE 'quarantined' END,
                now() - ((({rows} - n) * {row_step}) || ' seconds')::interval,
                now() - ((({rows} - n) * {row_step}) || ' seconds')::interval
            FROM generate_series(1, {rows}) AS n
            """
        )
        conn.exec_driver_sql(
            f"""
            INSERT INTO events (topic, job_id, dataset, payload, status, created_at,
                dispatched_at)
            SELECT 'sales.loaded', '01J' || lpad((mod(n, {jobs_count}) + 1)::text, 23, '0'),
                'sales', '{{}}', 'done',
                now() - ((({events} - n) * {event_step}) || ' seconds')::interval,
                now() - ((({events} - n) * {event_step}) || ' seconds')::interval
            FROM generate_series(1, {events}) AS n
            """
        )
        conn.exec_driver_sql("ANALYZE quarantined_rows")
        conn.exec_driver_sql("ANALYZE events")


@contextmanager
def captured_sql(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its parameters) sent through `engine` meanwhile."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH", "DELETE")):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def plan(engine: sa.Engine, statement: str, parameters: Any) -> str:
    """PostgreSQL's plan for the statement, as text."""
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in cursor.fetchall())


LEDGER_QUERIES: dict[str, Callable[[Ledger], object]] = {
    "dispatch claim": lambda ledger: ledger.claim_due(10),
    "newest jobs": lambda ledger: ledger.list_jobs(limit=50),
    "newest failed jobs": lambda ledger: ledger.list_jobs(status=JobStatus.FAILED, limit=50),
    "newest jobs of a dataset": lambda ledger: ledger.list_jobs(dataset="sales", limit=50),
    "status counts": lambda ledger: ledger.status_counts(),
    "reaper's processing jobs": lambda ledger: ledger.processing_jobs(),
    "prune candidates": lambda ledger: _candidates(
        ledger.engine, ["completed", "cancelled"], utcnow() - dt.timedelta(days=1), 1000, set()
    ),
}


def test_ledger_queries_use_an_index_on_a_large_ledger(postgres_url: str) -> None:
    engine = create_engine(emptied(postgres_url))
    seed_finished_jobs(engine, SEEDED_JOBS)
    ledger = Ledger(engine)
    scans = {}
    for name, query in LEDGER_QUERIES.items():
        with captured_sql(engine) as statements:
            query(ledger)
        assert statements, name
        for statement, parameters in statements:
            text = plan(engine, statement, parameters)
            if "Seq Scan on jobs" in text:
                scans[name] = f"{statement}\n{text}"
    for name, sql in sql_blocks().items():  # every query docs/monitoring.md gives operators
        if runs_on(sql, postgres=True):
            text = plan(engine, sql, None)
            if "Seq Scan on jobs" in text:
                scans[f"monitoring.md {name}"] = text
    engine.dispose()
    assert scans == {}


def test_status_counts_follow_every_change(ledger: Ledger, engine: sa.Engine) -> None:
    """Random creations, claims, completions, failures, retries, cancellations and deletes:
    the counts the triggers keep always equal a real count."""
    rng = random.Random(7)
    for n in range(30):
        ledger.create_job(
            dataset=rng.choice(["sales", "returns"]),
            source_uri=f"/s/{n}",
            source_name=f"{n}.csv",
            content_sha256=f"{n:064d}",
            size_bytes=1,
        )
    for _ in range(4):
        for job in ledger.claim_due(rng.randint(1, 6)):
            ledger.begin_run(job.job_id, f"run-{job.job_id}-{job.attempts}")
            action = rng.choice(["complete", "fail", "cancel"])
            run_id = f"run-{job.job_id}-{job.attempts}"
            if action == "complete":
                with engine.begin() as conn:
                    ledger.complete(
                        conn, job.job_id, run_id, rows_loaded=1, rows_duplicate=0, metrics={}
                    )
            elif action == "fail":
                ledger.fail(
                    job.job_id, error_type=ErrorType.PERMANENT, message="bad", run_id=run_id
                )
                if rng.random() < 0.5:
                    ledger.retry(job.job_id)
            else:
                ledger.cancel(job.job_id)
        with engine.begin() as conn:  # an operator's own SQL goes through the triggers too
            conn.execute(sa.delete(jobs).where(jobs.c.source_uri == f"/s/{rng.randint(0, 29)}"))
        with engine.connect() as conn:
            real = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status))
            assert ledger.status_counts() == {status: int(n) for status, n in real}
            retried = conn.execute(
                sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(jobs.c.retry_count), 0)
                ).where(jobs.c.retry_count > 0)
            ).one()
        retry = rm.metrics(engine, stuck_after_seconds=300).retry
        assert (retry.jobs_retried, retry.total_retries) == tuple(int(n) for n in retried)
        if engine.dialect.name == "postgresql":
            assert kept_minutes(engine) == exact_minutes(engine)
    returns = ledger.status_counts(dataset="returns")
    assert sum(returns.values()) == len(ledger.list_jobs(dataset="returns", limit=100))


def kept_minutes(engine: sa.Engine) -> dict[tuple[Any, str], tuple[int, ...]]:
    """`job_finished_minutes` as the triggers keep it, without the minutes emptied since."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT minute, status, jobs, rows_loaded, timed_jobs, work_ms, exhausted"
            " FROM job_finished_minutes"
        ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows if any(r[2:])}


def exact_minutes(engine: sa.Engine) -> dict[tuple[Any, str], tuple[int, ...]]:
    """The same figures counted from the jobs themselves (PostgreSQL)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            """SELECT date_trunc('minute', completed_at, 'UTC'), status, count(*),
                coalesce(sum(rows_loaded), 0), count(started_at),
                coalesce(sum(round(1000 * (date_part('epoch', completed_at)
                    - date_part('epoch', started_at)))), 0),
                count(*) FILTER (WHERE error_type = 'transient_exhausted')
            FROM jobs WHERE status IN ('completed', 'failed') AND completed_at IS NOT NULL
            GROUP BY 1, 2"""
        ).all()
    return {(r[0], r[1]): tuple(int(v) for v in r[2:]) for r in rows}


SEEDED_QUARANTINED_ROWS = 200_000
SEEDED_EVENTS = 100_000
BIG_TABLES = re.compile(r"Seq Scan on (jobs|quarantined_rows|events)\b")


# A cursor request is one request: the client holds the cursor of the page before. Each
# read below fetches what it needs from an earlier page once per engine (the first call
# runs both statements, so the EXPLAIN test sees both); timed calls are the request alone.
@cache
def _next_cursor(engine: sa.Engine, what: str, sort: str) -> str | None:
    if what == "failed jobs":
        return rm.list_jobs(engine, FAILED).next_cursor
    if what == "jobs":
        return rm.list_jobs(engine, sort=sort, limit=50).next_cursor
    return rm.list_failed_rows(engine, sort=sort, limit=50).next_cursor


def _cursor_page(engine: sa.Engine, sort: str) -> object:
    return rm.list_jobs(engine, sort=sort, limit=50, cursor=_next_cursor(engine, "jobs", sort))


def _failed_rows_cursor_page(engine: sa.Engine, sort: str) -> object:
    cursor = _next_cursor(engine, "failed rows", sort)
    return rm.list_failed_rows(engine, sort=sort, limit=50, cursor=cursor)


@cache
def _recent_job_id(engine: sa.Engine) -> str:
    return rm.list_jobs(engine, limit=1).items[0].job_id


FAILED = rm.JobFilters(statuses=[JobStatus.FAILED])
# What the ops API, the dashboard, `etl jobs list|stats` and the alert and health rules read.
OPS_READS: dict[str, Callable[[sa.Engine], object]] = {
    "metrics, 24 h (/v1/metrics, etl jobs stats)": lambda e: rm.metrics(e, stuck_after_seconds=300),
    "metrics, 1 h (/metrics, /readyz)": lambda e: rm.metrics(
        e, stuck_after_seconds=300, window_seconds=3600
    ),
    "alert figures over a 24 h metrics": lambda e: alerts.ledger_figures(
        e, 300, metrics=rm.metrics(e, stuck_after_seconds=300)
    ),
    "alert figures alone (alerts_sensor)": lambda e: alerts.ledger_figures(e, 300),
    "readiness (/readyz)": lambda e: health.readiness(
        e, thresholds=alerts.Thresholds(), instance_factory=None
    ),
    "histogram samples (/metrics)": lambda e: rm.recent_completions(e),
    "uploads (/v1/uploads/active)": lambda e: rm.uploads(e),
    "activity (/v1/activity)": lambda e: rm.activity(e),
    "job detail (/v1/jobs/{id})": lambda e: rm.job_detail(e, _recent_job_id(e)),
    "failed jobs (the failed-jobs view)": lambda e: rm.list_jobs(e, FAILED),
    "failed jobs, page 2 (by cursor)": lambda e: rm.list_jobs(
        e, FAILED, cursor=_next_cursor(e, "failed jobs", "")
    ),
    "jobs of a dataset": lambda e: rm.list_jobs(e, rm.JobFilters(dataset="sales")),
    "jobs created in the last 30 days (estimated total)": lambda e: rm.list_jobs(
        e, rm.JobFilters(created_from=utcnow() - dt.timedelta(days=30))
    ),
    "jobs, offset page": lambda e: rm.list_jobs(e, offset=1000),
    **{
        f"jobs by {sort}, page 2 (by cursor)": partial(_cursor_page, sort=sort.value)
        for sort in rm.JobSort
    },
    "failed rows (/v1/failed-rows)": lambda e: rm.list_failed_rows(e),
    **{
        f"failed rows by {sort}, page 2 (by cursor)": partial(
            _failed_rows_cursor_page, sort=sort.value
        )
        for sort in rm.FailedRowSort
    },
    "failed rows of a job": lambda e: rm.list_failed_rows(
        e, rm.FailedRowFilters(job_id="01J" + "7".zfill(23))
    ),
}


def test_operator_reads_use_an_index_on_a_large_ledger(postgres_url: str) -> None:
    """No read of the ops API, dashboard, CLI or alert rules scans jobs, quarantined_rows or
    events sequentially.

    Seeded (100,000 jobs, 200,000 quarantined rows, 100,000 events) and ANALYZEd rather than
    run with `enable_seqscan = off`: with seq scans off the planner takes any index, even a
    whole-index walk that is as slow as the scan, and a missing index would go unseen; at
    these proportions it chooses the plan it would choose at a million jobs.
    """
    engine = create_engine(emptied(postgres_url))
    seed_finished_jobs(engine, SEEDED_JOBS)
    seed_quarantine_and_events(engine, SEEDED_JOBS, SEEDED_QUARANTINED_ROWS, SEEDED_EVENTS)
    scans = {}
    for name, read in OPS_READS.items():
        with captured_sql(engine) as statements:
            read(engine)
        assert statements, name
        for statement, parameters in statements:
            if "alembic_version" in statement:
                continue  # the schema check's one-row table
            text = plan(engine, statement, parameters)
            if BIG_TABLES.search(text):
                scans[name] = f"{statement}\n{text}"
    engine.dispose()
    assert scans == {}
