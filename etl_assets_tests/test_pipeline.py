"""The whole path through the real sensors and asset job: CSV -> jobs -> runs -> warehouse.

Runs execute in process (LocalDaemon) on a real Dagster instance, against SQLite and
PostgreSQL, with the reference APIs; `test_daemon.py` covers the real daemon.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.config import Settings
from etl_assets.datasets.sales import sales_fact
from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.definitions import build_definitions
from etl_assets.events.store import events
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger
from etl_assets.reference_api import Fault, ReferenceApiServer
from etl_assets.warehouse import load as load_module


def test_csv_to_warehouse_to_completed(platform: Platform, instance: dg.DagsterInstance) -> None:
    north = platform.submit("north.csv", rows=90, every=15, seed=1)
    south = platform.submit("south.csv", rows=45, seed=2)

    results = platform.run_all()

    assert [r.success for r in results] == [True, True]
    north, south = platform.ledger.get(north.job_id), platform.ledger.get(south.job_id)
    assert north.status is JobStatus.COMPLETED and south.status is JobStatus.COMPLETED
    assert north.completed_at is not None
    assert (north.rows_total, north.rows_quarantined, north.rows_duplicate) == (90, 6, 0)
    assert north.rows_loaded == 84
    assert (south.rows_total, south.rows_loaded, south.rows_quarantined) == (45, 45, 0)
    assert platform.facts(north.job_id) == 84 and platform.facts(south.job_id) == 45
    assert north.error_type is None and north.metrics and north.metrics["chunks"] == 1
    [attempt] = platform.ledger.attempts(north.job_id)
    assert attempt["outcome"] == "succeeded" and attempt["run_id"] == north.run_id

    reasons = [row["reason"] for row in platform.ledger.quarantined(north.job_id)]
    assert len(reasons) == 6 and "sku: SKU-9999 is not in the product catalog" in reasons

    # The UI shows each job's partition and the row counts of its materializations.
    assert set(instance.get_dynamic_partitions("sales_jobs")) == {north.job_id, south.job_id}
    assert materialized(instance, "sales/source_rows", north.job_id)["rows_quarantined"] == 5
    loaded = materialized(instance, "sales/sales_fact", north.job_id)
    assert (loaded["dagster/row_count"], loaded["rows_quarantined"]) == (84, 6)


def materialized(instance: dg.DagsterInstance, asset: str, job_id: str) -> dict[str, Any]:
    """The metadata of the asset's latest materialization for one job partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey.from_user_string(asset), asset_partitions=[job_id]
        ),
        limit=1,
    ).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {key: value.value for key, value in materialization.metadata.items()}


def test_rows_in_equal_loaded_plus_quarantined_plus_duplicate(platform: Platform) -> None:
    frame = sales_frame(30, seed=3, order_prefix="DUP")
    frame.iloc[10] = frame.iloc[3]  # the same order line twice
    frame.iloc[20] = frame.iloc[3]
    frame.iloc[25, frame.columns.get_loc("quantity")] = "lots"
    path = write_sales_csv(platform.tmp_path / "dup.csv", frame)
    job = publish_file(
        platform.ledger, source_archive(platform.settings.staging_dir), path, dataset="sales"
    ).job

    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert (done.rows_total, done.rows_loaded, done.rows_quarantined, done.rows_duplicate) == (
        30,
        27,
        1,
        2,
    )
    assert platform.facts(job.job_id) == 27


def test_each_job_is_one_run_per_attempt_and_never_started_twice(platform: Platform) -> None:
    job = platform.submit("once.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    assert request.run_key == f"{job.job_id}:1"
    assert request.partition_key == job.job_id
    assert request.tags["etl/job_id"] == job.job_id
    assert platform.daemon.tick("dispatch_sensor") == []  # re-evaluated: nothing to start
    platform.daemon.execute(request)
    assert platform.daemon.tick("dispatch_sensor") == []
    assert platform.ledger.get(job.job_id).status is JobStatus.COMPLETED


def test_a_completed_job_is_not_loaded_again(platform: Platform) -> None:
    job = platform.submit("done.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    assert platform.daemon.execute(request).success
    before = platform.ledger.get(job.job_id)

    again = platform.daemon.execute(request)  # e.g. re-executed from the Dagster UI

    assert not again.success
    assert platform.ledger.get(job.job_id) == before
    assert platform.facts() == before.rows_loaded


def test_api_always_down_ends_in_the_dead_letter_state(
    platform: Platform, api: ReferenceApiServer
) -> None:
    api.faults.add(Fault("/fx", status=503))
    job = platform.submit("down.csv")

    [result] = platform.run_all()

    assert not result.success
    dead = platform.ledger.get(job.job_id)
    assert dead.status is JobStatus.FAILED
    assert dead.error_type is ErrorType.TRANSIENT_EXHAUSTED
    assert (dead.attempts, dead.retry_count) == (3, 3)  # RETRY_MAX_ATTEMPTS, in one run
    assert dead.error_message is not None
    assert dead.error_message.startswith("attempt 3/3 failed in sales/fx_rates: HTTP 503 from")
    assert dead.error_message.endswith("; no attempts left")
    assert dead.error_traceback and "HTTPError" in dead.error_traceback
    attempts = platform.ledger.attempts(job.job_id)
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "failed"]
    assert {a["run_id"] for a in attempts} == {dead.run_id}
    assert all("HTTP 503" in a["error_message"] for a in attempts)
    assert platform.facts() == 0


def test_api_unreachable_is_retried_then_dead_lettered(
    platform: Platform, settings: Settings
) -> None:
    unreachable = Settings(**{**settings.__dict__, "catalog_api_url": "http://127.0.0.1:9/x"})
    platform.daemon.defs = build_definitions(unreachable)
    job = platform.submit("offline.csv")
    platform.run_all()
    dead = platform.ledger.get(job.job_id)
    assert (dead.status, dead.error_type) == (JobStatus.FAILED, ErrorType.TRANSIENT_EXHAUSTED)
    assert "sales/catalog_products: ConnectionError" in (dead.error_message or "")


def test_fx_not_found_is_permanent(platform: Platform, api: ReferenceApiServer) -> None:
    api.faults.add(Fault("/fx", status=404))
    job = platform.submit("gone.csv")
    platform.run_all()
    failed = platform.ledger.get(job.job_id)
    assert (failed.status, failed.error_type) == (JobStatus.FAILED, ErrorType.PERMANENT)


def test_a_file_with_only_invalid_rows_fails_permanently(platform: Platform) -> None:
    job = platform.submit("bad.csv", rows=5, every=1)
    platform.run_all()
    failed = platform.ledger.get(job.job_id)
    assert (failed.status, failed.error_type) == (JobStatus.FAILED, ErrorType.PERMANENT)
    assert "all 5 rows are invalid" in (failed.error_message or "")
    assert failed.rows_total == 5
    assert len(platform.ledger.quarantined(job.job_id)) == 5  # nothing is lost


def test_a_failure_mid_load_is_retried_from_the_failed_chunk(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = Settings(**{**platform.settings.__dict__, "chunk_rows": 50})
    platform.daemon.defs = build_definitions(small)
    job = platform.submit("big.csv", rows=120)
    real_upsert = load_module.upsert_facts
    calls: list[int] = []

    def upsert_then_fail(conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        counts = real_upsert(conn, *args, **kwargs)  # rows written in this transaction...
        calls.append(len(calls))
        if len(calls) == 2:
            raise ConnectionResetError("the database went away mid-chunk")  # ...rolled back
        return counts

    monkeypatch.setattr(load_module, "upsert_facts", upsert_then_fail)
    [result] = platform.run_all()

    # The load step failed in chunk 2 (after chunk 1 committed) and Dagster retried it in the
    # same run: the retry resumed at chunk 2, and chunk 2's first try left nothing behind.
    assert result.success
    done = platform.ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert done.metrics is not None and done.metrics["resumed_from_chunk"] == 1
    assert (done.rows_loaded, done.rows_duplicate, platform.facts(job.job_id)) == (120, 0, 120)
    attempts = platform.ledger.attempts(job.job_id)
    assert [a["outcome"] for a in attempts] == ["failed", "succeeded"]
    assert "the database went away mid-chunk" in attempts[0]["error_message"]
    # The resumed run saw only chunks 2 and 3: the job's event still names the customers of
    # chunk 1 too (read back from the warehouse).
    with platform.ledger.engine.connect() as conn:
        [payload] = conn.execute(
            sa.select(events.c.payload).where(events.c.job_id == job.job_id)
        ).scalars()
        customers = conn.execute(
            sa.select(sales_fact.c.customer_id)
            .where(sales_fact.c.job_id == job.job_id)
            .distinct()
            .order_by(sales_fact.c.customer_id)
        ).scalars()
        assert payload["customers"] == list(customers)


def test_a_commit_lost_before_completion_is_finished_by_a_retry(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = platform.submit("late.csv")
    real_complete = Ledger.complete

    def lose_connection(*args: Any, **kwargs: Any) -> Job:
        raise sa.exc.OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Ledger, "complete", lose_connection)
    platform.run_all()
    assert platform.ledger.get(job.job_id).status is JobStatus.FAILED
    assert platform.facts(job.job_id) == 60  # every chunk committed before the failure

    monkeypatch.setattr(Ledger, "complete", real_complete)
    platform.ledger.retry(job.job_id)
    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert (done.status, done.rows_loaded, done.rows_duplicate) == (JobStatus.COMPLETED, 60, 0)
    assert platform.facts() == 60  # loaded exactly once


def test_a_cancelled_job_stops_its_run_without_writing(platform: Platform) -> None:
    job = platform.submit("cancel.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    platform.ledger.cancel(job.job_id)
    result = platform.daemon.execute(request)
    assert not result.success
    assert platform.ledger.get(job.job_id).status is JobStatus.CANCELLED
    assert platform.facts() == 0
