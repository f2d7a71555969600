"""The ops read model against a ledger seeded with known jobs (ops_seed), on both dialects."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from ops_seed import C_ERROR, C_REASON, EXPECTED, seed_ledger
from seed import seed_job

from etl_assets.db import utcnow
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.ledger.errors import JobNotFound
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ledger.schema import (
    job_status_counts,
    jobs,
    quarantined_row_counts,
    quarantined_rows,
)
from etl_assets.ops import read_model as rm
from etl_assets.ops.read_model import common

UI = "http://dagster.example:3000"


@pytest.fixture
def now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


@pytest.fixture
def ids(engine: sa.Engine, now: dt.datetime) -> dict[str, str]:
    return seed_ledger(engine, now)


def test_metrics_match_the_hand_computed_figures(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    m = rm.metrics(engine, stuck_after_seconds=300, dagster_ui_url=UI, now=now)
    got = dataclasses.asdict(m)
    for key, value in EXPECTED.items():
        assert got[key] == value, key
    assert [s.job_id for s in m.stuck_jobs] == [ids["E"]]
    assert m.stuck_jobs[0].heartbeat_age_seconds == 600.0
    assert m.stuck_jobs[0].dagster_run_url == f"{UI}/runs/run-e"
    assert [f.job_id for f in m.recent_failures] == [ids["C"], ids["D"]]
    assert m.recent_failures[0].error_message == C_ERROR
    assert m.recent_failures[0].error_type is ErrorType.PERMANENT


def test_an_empty_ledger_has_zero_metrics(engine: sa.Engine) -> None:
    m = rm.metrics(engine, stuck_after_seconds=300)
    assert m.total_jobs == 0
    assert set(m.counts_by_status.values()) == {0}
    assert (m.failure_rate, m.avg_duration_seconds, m.stuck_jobs) == (None, None, [])


def test_list_jobs_filters_sorts_and_pages(engine: sa.Engine, ids: dict[str, str]) -> None:
    everything = rm.list_jobs(engine, limit=500)
    assert everything.total == 11
    # newest first by default: F (100 s ago), H (4 min ago), G (5 min ago)
    assert [j.job_id for j in everything.items[:3]] == [ids["F"], ids["H"], ids["G"]]

    failed = rm.list_jobs(engine, rm.JobFilters(statuses=[JobStatus.FAILED]), sort="created_at")
    assert [j.job_id for j in failed.items] == [ids["D"], ids["C"]]
    assert failed.items[1].error_message == C_ERROR

    permanent = rm.list_jobs(engine, rm.JobFilters(error_type=ErrorType.PERMANENT))
    assert [j.job_id for j in permanent.items] == [ids["C"]]

    now = utcnow()
    last_day = rm.JobFilters(created_from=now - dt.timedelta(days=1), created_to=now)
    assert rm.list_jobs(engine, last_day).total == 9  # not D (3 days) nor K (2 days)
    assert rm.list_jobs(engine, rm.JobFilters(dataset="invoices")).total == 0

    page = rm.list_jobs(engine, sort="-priority", limit=2, offset=0)
    assert (page.total, len(page.items), page.items[0].job_id) == (11, 2, ids["G"])
    second = rm.list_jobs(engine, sort="-created_at", limit=3, offset=3)
    assert [j.job_id for j in second.items] == [j.job_id for j in everything.items[3:6]]
    by_completion = rm.list_jobs(engine, sort="-completed_at", limit=3)
    # C failed 20 min ago, J was cancelled 45 min ago, B completed about an hour ago
    assert [j.job_id for j in by_completion.items] == [ids["C"], ids["J"], ids["B"]]


def test_list_jobs_rejects_bad_paging_and_sort(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="limit"):
        rm.list_jobs(engine, limit=0)
    with pytest.raises(ValueError, match="offset"):
        rm.list_jobs(engine, offset=-1)
    with pytest.raises(ValueError, match="source_uri"):
        rm.list_jobs(engine, sort="source_uri")


def test_job_detail_has_progress_attempts_and_run_links(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    f = rm.job_detail(engine, ids["F"], dagster_ui_url=UI, now=now)
    assert f.progress == rm.Progress(
        rows_processed=500,
        rows_total=1000,
        percent_complete=50.0,
        elapsed_seconds=100.0,
        rows_per_second=5.0,
        eta_seconds=100.0,
    )
    assert f.dagster_run_url == f"{UI}/runs/run-f"

    b = rm.job_detail(engine, ids["B"], dagster_ui_url=UI, now=now)
    assert [(a.attempt, a.outcome.value, a.run_id) for a in b.attempts] == [
        (1, "failed", "run-b1"),
        (2, "succeeded", "run-b2"),
    ]
    assert b.attempts[0].duration_seconds == 60.0
    assert b.attempts[1].dagster_run_url == f"{UI}/runs/run-b2"
    assert (b.progress.percent_complete, b.progress.eta_seconds) == (100.0, None)
    assert b.progress.elapsed_seconds == 300.0

    c = rm.job_detail(engine, ids["C"], dagster_ui_url=None)
    assert c.job.error_traceback is not None
    assert c.dagster_run_url is None
    with pytest.raises(JobNotFound):
        rm.job_detail(engine, "0" * 26)


def test_uploads_show_active_jobs_first_then_recent(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    overview = rm.uploads(engine, now=now)
    assert (overview.active_uploads, overview.pending_uploads) == (2, 3)
    order = [u.job_id for u in overview.recent_uploads]
    assert set(order[:2]) == {ids["E"], ids["F"]}
    assert ids["D"] not in order and ids["K"] not in order  # changed days ago
    f = next(u for u in overview.recent_uploads if u.job_id == ids["F"])
    assert (f.rows_processed, f.rows_total, f.percent_complete) == (500, 1000, 50.0)
    assert f.elapsed_seconds == 100.0


def test_failed_rows_filter_and_sort(engine: sa.Engine, ids: dict[str, str]) -> None:
    page = rm.list_failed_rows(engine)
    assert page.total == 3
    assert [(r.job_id, r.row_number) for r in page.items] == [
        (ids["C"], 5),
        (ids["A"], 3),
        (ids["A"], 2),
    ]
    assert page.items[0].reason == C_REASON
    assert page.items[0].source_name == "sales-c.csv"

    by_job = rm.list_failed_rows(engine, sort="job_id")
    assert [r.row_number for r in by_job.items] == [2, 3, 5]  # A's id sorts before C's
    every = rm.list_failed_rows(engine, rm.FailedRowFilters(job_id=ids["A"], status=None))
    assert {r.status for r in every.items} == {RowStatus.QUARANTINED, RowStatus.LOADED}
    now = utcnow()
    early = rm.FailedRowFilters(created_to=now - dt.timedelta(minutes=56, seconds=30))
    assert rm.list_failed_rows(engine, early).total == 2  # lines 2 and 3
    assert rm.list_failed_rows(engine, rm.FailedRowFilters(dataset="other")).total == 0


def test_activity_buckets_count_completions_failures_and_rates(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    series = rm.activity(engine, window_seconds=24 * 3600, bucket_seconds=600, now=now)
    assert len(series.buckets) == 144
    assert series.buckets[-1].start <= now < series.buckets[-1].start + dt.timedelta(minutes=10)
    assert sum(b.jobs_completed for b in series.buckets) == 2
    assert sum(b.jobs_failed for b in series.buckets) == 1
    assert sum(b.rows_loaded for b in series.buckets) == 297
    assert sum(b.attempts_ended for b in series.buckets) == 4
    assert sum(b.attempts_failed for b in series.buckets) == 2
    c_end = now - dt.timedelta(minutes=20)
    [c_bucket] = [
        b for b in series.buckets if b.start <= c_end < b.start + dt.timedelta(minutes=10)
    ]
    assert (c_bucket.jobs_failed, c_bucket.error_rate) == (1, 1.0)
    a_end = now - dt.timedelta(hours=2) + dt.timedelta(seconds=100)
    [a_bucket] = [
        b for b in series.buckets if b.start <= a_end < b.start + dt.timedelta(minutes=10)
    ]
    # A's 97 rows over the 100 s it ran, not over the bucket's 600 s.
    assert (a_bucket.rows_per_second, a_bucket.work_seconds) == (0.97, 100.0)
    assert a_bucket.rows_per_bucket_second == round(97 / 600, 3)
    with pytest.raises(ValueError, match="bucket_seconds"):
        rm.activity(engine, bucket_seconds=10)


def test_a_pending_job_shows_no_elapsed_time(engine: sa.Engine, ids: dict[str, str]) -> None:
    """C keeps the start of its failed attempt when retried; it is waiting, not running."""
    Ledger(engine).retry(ids["C"])
    progress = rm.job_detail(engine, ids["C"]).progress
    assert (progress.elapsed_seconds, progress.rows_per_second, progress.eta_seconds) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("sort", [s.value for s in rm.JobSort])
def test_keyset_pages_walk_the_same_order_as_one_page(
    engine: sa.Engine, ids: dict[str, str], sort: str
) -> None:
    """Following next_cursor two jobs at a time gives every job once, in the order of one
    big page, unfinished jobs last when sorting by completed_at (either way)."""
    whole = [j.job_id for j in rm.list_jobs(engine, sort=sort, limit=500).items]
    walked: list[str] = []
    cursor = None
    while True:
        page = rm.list_jobs(engine, sort=sort, limit=2, cursor=cursor)
        walked += [j.job_id for j in page.items]
        assert page.total == 11 and not page.total_is_estimate
        assert page.has_more == (page.next_cursor is not None)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert walked == whole
    offset_pages = [rm.list_jobs(engine, sort=sort, limit=4, offset=n).items for n in (0, 4, 8)]
    assert [j.job_id for items in offset_pages for j in items] == whole


def test_failed_row_pages_follow_the_cursor(engine: sa.Engine, ids: dict[str, str]) -> None:
    for sort in rm.FailedRowSort:
        every = rm.FailedRowFilters(status=None)
        whole = [r.id for r in rm.list_failed_rows(engine, every, sort=sort).items]
        walked: list[int] = []
        cursor = None
        while True:
            page = rm.list_failed_rows(
                engine, rm.FailedRowFilters(status=None), sort=sort, limit=1, cursor=cursor
            )
            walked += [r.id for r in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert walked == whole, sort


def test_bad_cursors_and_deep_offsets_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="cursor"):
        rm.list_jobs(engine, cursor="not-a-cursor")
    with pytest.raises(ValueError, match="cursor"):  # a cursor of another sort's key type
        rm.list_jobs(engine, sort="priority", cursor=rm.list_jobs(engine).next_cursor or "WzFd")
    with pytest.raises(ValueError, match="offset"):
        rm.list_jobs(engine, offset=rm.MAX_OFFSET + 1)
    with pytest.raises(ValueError, match="cursor"):
        rm.list_failed_rows(engine, cursor="WyJ4IiwgMV0")  # ["x", 1]: not a time


def test_counts_come_from_the_trigger_kept_tables(engine: sa.Engine, ids: dict[str, str]) -> None:
    """metrics, list totals and uploads read job_status_counts / quarantined_row_counts, not a
    count of the big tables: a figure changed only there shows everywhere."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(job_status_counts)
            .where(job_status_counts.c.status == "pending")
            .values(jobs=job_status_counts.c.jobs + 1000)
        )
        conn.execute(
            sa.update(quarantined_row_counts)
            .where(quarantined_row_counts.c.status == "quarantined")
            .values(rows=quarantined_row_counts.c.rows + 1000)
        )
    m = rm.metrics(engine, stuck_after_seconds=300)
    assert (m.counts_by_status["pending"], m.quarantined_rows_open) == (1003, 1003)
    pending = rm.list_jobs(engine, rm.JobFilters(statuses=[JobStatus.PENDING]), limit=1)
    assert (pending.total, pending.total_is_estimate) == (1003, False)
    assert rm.list_failed_rows(engine, limit=1).total == 1003
    assert rm.uploads(engine).pending_uploads == 1003


def test_quarantine_counts_follow_every_change(engine: sa.Engine, ids: dict[str, str]) -> None:
    """The triggers of migration 0010 keep quarantined_row_counts equal to a real count
    through inserts, status changes and deletes (a job's rows go with it)."""

    def real_and_kept() -> tuple[dict[str, int], dict[str, int]]:
        with engine.connect() as conn:
            q = quarantined_rows.c
            real = conn.execute(sa.select(q.status, sa.func.count()).group_by(q.status))
            kept = conn.execute(sa.select(quarantined_row_counts))
            return {s: int(n) for s, n in real}, {s: int(n) for s, n in kept if n}

    real, kept = real_and_kept()
    assert real == kept and real
    with engine.begin() as conn:
        conn.execute(
            sa.update(quarantined_rows)
            .where(quarantined_rows.c.status == "quarantined")
            .values(status="loaded")
        )
    real, kept = real_and_kept()
    assert real == kept
    with engine.begin() as conn:
        conn.execute(sa.delete(jobs).where(jobs.c.job_id == ids["A"]))
    real, kept = real_and_kept()
    assert real == kept


def test_totals_past_the_exact_cap_are_marked_estimates(
    engine: sa.Engine, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter the counts table cannot answer is counted up to EXACT_COUNT_CAP; past it,
    PostgreSQL gives its estimate (marked), SQLite its exact count."""
    monkeypatch.setattr(common, "EXACT_COUNT_CAP", 3)
    recent = rm.JobFilters(created_from=utcnow() - dt.timedelta(days=1))
    page = rm.list_jobs(engine, recent, limit=2)
    postgres = engine.dialect.name == "postgresql"
    assert page.total_is_estimate is postgres
    if not postgres:
        assert page.total == 9
    assert page.total >= 3 and page.has_more
    small = rm.list_jobs(engine, rm.JobFilters(error_type=ErrorType.PERMANENT), limit=1)
    assert (small.total, small.total_is_estimate) == (1, False)


def test_the_rate_chart_is_rows_per_second_of_work(engine: sa.Engine) -> None:
    """A 50,000-row job that ran 3 s reads ~16,667 rows/s, not 50,000 / 600 s."""
    now = utcnow().replace(microsecond=0)
    seed_job(
        engine,
        "completed",
        now=now,
        started_at=now - dt.timedelta(seconds=63),
        completed_at=now - dt.timedelta(seconds=60),
        rows_loaded=50_000,
    )
    series = rm.activity(engine, window_seconds=3600, bucket_seconds=600, now=now)
    [bucket] = [b for b in series.buckets if b.jobs_completed]
    assert bucket.rows_per_second == round(50_000 / 3, 3)
    assert bucket.rows_per_bucket_second == round(50_000 / 600, 3)
    assert all(b.rows_per_second is None for b in series.buckets if not b.jobs_completed)


def test_window_figures_split_at_a_minute_add_up_to_the_jobs(engine: sa.Engine) -> None:
    """A window that starts mid-minute: on PostgreSQL its whole minutes come from the
    trigger-kept `job_finished_minutes` and its first part-minute from the jobs; either way
    the figures are those of exactly the jobs that finished since the window's start, and
    they follow a failed job's retry and a deletion."""
    now = utcnow().replace(second=30, microsecond=0)
    since = now - dt.timedelta(hours=1)
    ages = [3599, 3570, 3540, 3531, 3529, 1800, 61, 59, 1, 4000]  # seconds before now
    ids = []
    for n, age in enumerate(ages):
        done = now - dt.timedelta(seconds=age)
        status = "failed" if n % 3 == 0 else "completed"
        extra = {"error_type": "transient_exhausted"} if n == 3 else {}
        ids.append(
            seed_job(
                engine,
                status,
                now=now,
                completed_at=done,
                updated_at=done,
                started_at=done - dt.timedelta(seconds=n + 1),
                rows_loaded=10 * (n + 1),
                **extra,
            )
        )

    def expected() -> tuple[int, int, int, int, float | None]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, jobs.c.rows_loaded, jobs.c.error_type, jobs.c.started_at,
                          jobs.c.completed_at).where(jobs.c.completed_at >= since)
            ).all()  # fmt: skip
        done = [r for r in rows if r.status == "completed"]
        failed = [r for r in rows if r.status == "failed"]
        durations = [(r.completed_at - r.started_at).total_seconds() for r in done]
        return (
            len(done),
            sum(r.rows_loaded for r in done),
            len(failed),
            sum(r.error_type == "transient_exhausted" for r in failed),
            round(sum(durations) / len(durations), 3) if durations else None,
        )

    def got() -> tuple[int, int, int, int, float | None]:
        m = rm.metrics(engine, stuck_after_seconds=300, window_seconds=3600, now=now)
        hour = (m.completed_in_window, m.failed_in_window, m.dead_lettered_in_window)
        with engine.connect() as conn:
            assert rm.finished_in_window(conn, since) == hour
        # A day's metrics carry the same hour, read in their one statement.
        day = rm.metrics(engine, stuck_after_seconds=300, now=now)
        assert (m.finished_last_hour, day.finished_last_hour) == (None, hour)
        return (
            m.completed_in_window,
            m.rows_loaded_in_window,
            m.failed_in_window,
            m.dead_lettered_in_window,
            m.avg_duration_seconds,
        )

    assert got() == expected() == (6, 330, 3, 1, 5.5)
    Ledger(engine).retry(ids[3])  # the exhausted one leaves failed
    with engine.begin() as conn:
        conn.execute(sa.delete(jobs).where(jobs.c.job_id == ids[1]))
    assert got() == expected() == (5, 310, 2, 0, 6.2)


def test_the_alert_figures_of_a_days_metrics_need_no_second_read(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    """/v1/metrics reads a day's metrics and evaluates the alert rules over the last hour:
    the hour comes with the metrics, so the rules read nothing more (here, from an engine
    that cannot even connect)."""
    from etl_assets.db import create_engine
    from etl_assets.ops import alerts

    day = rm.metrics(engine, stuck_after_seconds=300, now=now)
    unreachable = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    figures = alerts.ledger_figures(unreachable, 300, metrics=day)
    assert figures == alerts.ledger_figures(engine, 300, now)
    with pytest.raises(sa.exc.OperationalError):  # another moment than the metrics' is a read
        alerts.ledger_figures(unreachable, 300, now - dt.timedelta(minutes=5), metrics=day)


def test_statements_built_for_callers_values_are_kept_within_bounds(
    engine: sa.Engine, ids: dict[str, str], now: dt.datetime
) -> None:
    """The activity's statements are built once per bucket width, and the API lets a caller
    choose the width: however many widths are asked for, only the most recent are kept, and
    an evicted one is built again, to the same figures."""
    first = rm.activity(engine, bucket_seconds=600, now=now)
    for width in range(60, 60 * (common._STATEMENTS_KEPT + 10), 60):
        rm.activity(engine, window_seconds=max(width, 3600), bucket_seconds=width, now=now)
    assert len(common._STATEMENTS) <= common._STATEMENTS_KEPT
    assert rm.activity(engine, bucket_seconds=600, now=now) == first
