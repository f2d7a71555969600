"""The real thing: `dagster-daemon` with the workspace's code server, the instance configured
from dagster.yaml, files dropped into the inbox, and the ledger watched until they finish."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from processes import REPO, background, wait_until_finished, wait_until_runs_end

from etl_assets.config import Settings
from etl_assets.datasets.samples import corrupt, sales_frame, write_sales_csv
from etl_assets.db import engine_for
from etl_assets.definitions import defs
from etl_assets.downstream.assets import DOWNSTREAM_JOB
from etl_assets.downstream.base import latest_event_id
from etl_assets.ledger import JobStatus, Ledger
from etl_assets.runtime.instance import write_dagster_home

DAEMON = Path(sys.executable).with_name("dagster-daemon")

pytestmark = pytest.mark.daemon


@pytest.fixture
def daemon_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    write_dagster_home(home, REPO / "dagster.yaml", settings)
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "DATA_DIR": settings.data_dir,
        "DATABASE_URL": settings.database_url,
        "FX_API_URL": settings.fx_api_url,
        "CATALOG_API_URL": settings.catalog_api_url,
        "INBOX_SETTLE_SECONDS": "0",
        "INBOX_INTERVAL_SECONDS": "1",
        "DISPATCH_INTERVAL_SECONDS": "1",
        "JOBS_PER_RUN": "1",  # one run per job here; batch runs: test_batch.py, the benchmark
        "DOWNSTREAM_INTERVAL_SECONDS": "1",
    }
    return env


def wait_until_refreshed(event_id: int, timeout: float) -> dg.DagsterRun:
    """The successful downstream_job run that absorbed events up to `event_id`."""
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            for run in instance.get_runs(dg.RunsFilter(job_name=DOWNSTREAM_JOB)):
                if run.tags.get("etl/events_through") == str(event_id) and run.is_finished:
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no downstream run absorbed event {event_id} in {timeout} s")


def test_inbox_to_warehouse_through_the_daemon(
    daemon_env: dict[str, str], settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", daemon_env["DAGSTER_HOME"])
    inbox = Path(settings.inbox_dir) / "sales"
    clean = sales_frame(40, seed=5, order_prefix="CLEAN")
    dirty = sales_frame(40, seed=6, order_prefix="DIRTY")
    corrupt(dirty, every=10)
    write_sales_csv(inbox / "clean.csv", clean)
    write_sales_csv(inbox / "dirty.csv", dirty)
    (inbox / "broken.csv").write_text("order_id\nX\n")

    daemon = [str(DAEMON), "run", "-w", str(REPO / "workspace.yaml")]
    with background(daemon, daemon_env, tmp_path / "daemon.log"):
        ledger = Ledger(engine_for(settings))
        jobs = {j.source_name: j for j in wait_until_finished(ledger, 3, timeout=240)}
        # The ledger says done a moment before each run reports its own end: wait for that
        # too, since stopping the daemon stops the code server and the runs it launched.
        with dg.DagsterInstance.get() as instance:
            wait_until_runs_end(instance, 3, timeout=60)
        # downstream_sensor then refreshes daily_sales and customer_rfm for every load.
        with engine_for(settings).connect() as conn:
            latest = latest_event_id(conn)
        refresh = wait_until_refreshed(latest, timeout=120)

    assert jobs["clean.csv"].status is JobStatus.COMPLETED
    assert jobs["clean.csv"].rows_loaded == 40
    assert jobs["dirty.csv"].status is JobStatus.COMPLETED
    assert (jobs["dirty.csv"].rows_loaded, jobs["dirty.csv"].rows_quarantined) == (36, 4)
    assert jobs["broken.csv"].status is JobStatus.FAILED

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="sales_job"))
        assert len(runs) == 3
        by_job = {run.tags["etl/job_id"]: run for run in runs}
        for job in jobs.values():
            run = by_job[job.job_id]
            assert run.run_id == job.run_id
            assert run.tags["dagster/partition"] == job.job_id
            expected = "SUCCESS" if job.status is JobStatus.COMPLETED else "FAILURE"
            assert run.status.value == expected
        assert set(instance.get_dynamic_partitions("sales_jobs")) == {
            j.job_id for j in jobs.values()
        }

        # The downstream assets were materialized and every check of the dataset that
        # loaded (sales), of the one stock_cover also reads (inventory) and of the tables
        # refreshed is green; no other dataset's ran.
        assert refresh.status is dg.DagsterRunStatus.SUCCESS
        for asset in ("daily_sales", "customer_rfm", "stock_cover"):
            assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None
        check_keys = defs.resolve_asset_graph().asset_check_keys
        latest_checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(check_keys)
        )
        ran = {key.to_user_string(): record.status.value for key, record in latest_checks.items()}
        checked = {"sales/sales_fact", "inventory/inventory_snapshots", "daily_sales"}
        assert ran == {
            key.to_user_string(): "SUCCEEDED"
            for key in check_keys
            if key.asset_key.to_user_string() in checked
        }
