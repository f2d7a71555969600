"""The ops read model against a ledger seeded with known jobs (ops_seed), on both dialects."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from ops_seed import C_ERROR, C_REASON, EXPECTED, seed_ledger

from etl_assets.db import utcnow
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.ledger.errors import JobNotFound
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ops import read_model as rm

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
    assert a_bucket.rows_per_second == round(97 / 600, 3)
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
