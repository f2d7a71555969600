"""The warehouse asset checks: a clean sample run is all green; a warehouse corrupted in one
way turns exactly the matching check red, with the offending keys in its metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.assets.factory import build_dataset
from etl_assets.datasets.sales import SALES
from etl_assets.db import is_postgres, utcnow
from etl_assets.definitions import build_resources
from etl_assets.downstream.assets import (
    DOWNSTREAM_CHECKS,
    DOWNSTREAM_JOB,
    build_downstream_assets,
)
from etl_assets.ops.retention import prune
from etl_assets.warehouse.verify import all_checks

FACT_CHECKS = [check.name for check in all_checks(SALES)]
CHECKS = {*FACT_CHECKS, "daily_sales_totals_match"}


@pytest.fixture
def loaded(platform: Platform) -> Platform:
    """Two jobs loaded and the downstream tables refreshed by the real sensor and job."""
    platform.submit("north.csv", rows=60, every=9)
    platform.submit("south.csv", rows=30, seed=4)
    platform.run_all()
    [request] = platform.daemon.tick("downstream_sensor")
    assert platform.daemon.execute(request, DOWNSTREAM_JOB).success
    return platform


def run_checks(platform: Platform) -> dict[str, dg.AssetCheckEvaluation]:
    """Every warehouse check, on its own (no asset materialized, so none is blocked)."""
    sales = build_dataset(SALES, platform.settings)
    checks = [sales.checks, *DOWNSTREAM_CHECKS]
    defs = dg.Definitions(
        assets=[*sales.assets, *build_downstream_assets()],
        asset_checks=checks,
        jobs=[dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(*checks))],
        resources=build_resources(platform.settings),
    )
    result = defs.resolve_job_def("checks_only").execute_in_process(
        instance=platform.daemon.instance, raise_on_error=False
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def red(platform: Platform) -> dict[str, dict[str, Any]]:
    """The red checks, with their metadata as plain values."""
    evaluations = run_checks(platform)
    assert set(evaluations) == CHECKS
    return {
        name: {key: value.value for key, value in e.metadata.items()}
        for name, e in evaluations.items()
        if not e.passed
    }


def sql(platform: Platform, statement: str, **params: Any) -> None:
    with platform.ledger.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def one_fact(platform: Platform) -> dict[str, Any]:
    with platform.ledger.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM sales_fact ORDER BY order_id, sku LIMIT 1"))
        return dict(row.mappings().one())


def copy_fact(platform: Platform, row: dict[str, Any], **changes: Any) -> None:
    values = {**row, **changes}
    columns = ", ".join(values)
    sql(
        platform,
        f"INSERT INTO sales_fact ({columns}) VALUES ({', '.join(':' + c for c in values)})",
        **values,
    )


def test_a_clean_sample_run_turns_every_check_green(loaded: Platform) -> None:
    assert red(loaded) == {}


def test_a_product_missing_from_its_dimension(loaded: Platform) -> None:
    sku = one_fact(loaded)["sku"]
    sql(loaded, "DELETE FROM dim_product WHERE sku = :sku", sku=sku)
    failed = red(loaded)
    assert set(failed) == {"fact_dimensions_exist"}
    sample = failed["fact_dimensions_exist"]["offending_sample"]
    assert {row["sku"] for row in sample} == {sku}
    assert all(row["dim_product_missing"] and not row["dim_customer_missing"] for row in sample)


def test_a_row_of_a_job_the_ledger_does_not_know(loaded: Platform) -> None:
    copy_fact(loaded, one_fact(loaded), order_id="GHOST-1", job_id="NO-SUCH-JOB")
    failed = red(loaded)
    assert set(failed) == {"fact_jobs_completed"}
    assert failed["fact_jobs_completed"]["offending_sample"] == [
        {"job_id": "NO-SUCH-JOB", "status": None, "rows": 1}
    ]


def test_rows_of_a_pruned_job_keep_their_lineage(loaded: Platform) -> None:
    report = prune(
        loaded.ledger.engine,
        older_than=dt.timedelta(0),
        dead_letters_older_than=dt.timedelta(days=90),
        now=utcnow() + dt.timedelta(seconds=1),
    )
    assert report.finished == 2  # both jobs left the ledger; their tombstones stay
    assert red(loaded) == {}


def test_a_job_whose_rows_do_not_add_up(loaded: Platform) -> None:
    job_id = one_fact(loaded)["job_id"]
    sql(loaded, "UPDATE jobs SET rows_duplicate = rows_duplicate + 2 WHERE job_id = :j", j=job_id)
    failed = red(loaded)
    assert set(failed) == {"job_rows_balance"}
    assert failed["job_rows_balance"]["offending_count"] == 1
    assert failed["job_rows_balance"]["offending_sample"][0]["job_id"] == job_id


@pytest.fixture
def fact_without_key(loaded: Platform) -> Iterator[Platform]:
    """sales_fact without its primary key, so a duplicate key can get in (put back after)."""
    engine = loaded.ledger.engine
    with engine.begin() as conn:
        if is_postgres(conn):
            conn.exec_driver_sql("ALTER TABLE sales_fact DROP CONSTRAINT pk_sales_fact")
        else:
            conn.exec_driver_sql("CREATE TABLE fact_copy AS SELECT * FROM sales_fact")
            conn.exec_driver_sql("DROP TABLE sales_fact")
            conn.exec_driver_sql("ALTER TABLE fact_copy RENAME TO sales_fact")
    yield loaded
    if is_postgres(engine):  # the session's PostgreSQL database is shared by later tests
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sales_fact")
            conn.exec_driver_sql(
                "ALTER TABLE sales_fact ADD CONSTRAINT pk_sales_fact PRIMARY KEY (order_id, sku)"
            )


def test_a_natural_key_loaded_twice(fact_without_key: Platform) -> None:
    platform = fact_without_key
    row = one_fact(platform)
    # The second copy belongs to a job still in flight: only the key check may see it.
    pending = platform.submit("late.csv", rows=3)
    copy_fact(platform, row, job_id=pending.job_id)
    failed = red(platform)
    assert set(failed) == {"no_duplicate_natural_keys"}
    assert failed["no_duplicate_natural_keys"]["offending_sample"] == [
        {"order_id": row["order_id"], "sku": row["sku"], "rows": 2}
    ]


def test_a_row_without_fx_conversion(loaded: Platform) -> None:
    row = one_fact(loaded)
    sql(
        loaded,
        "UPDATE sales_fact SET fx_rate = 0 WHERE order_id = :o AND sku = :s",
        o=row["order_id"],
        s=row["sku"],
    )
    failed = red(loaded)
    assert set(failed) == {"fx_conversion_present"}
    [offending] = failed["fx_conversion_present"]["offending_sample"]
    assert (offending["order_id"], offending["sku"], offending["fx_rate"]) == (
        row["order_id"],
        row["sku"],
        0,
    )


def test_daily_sales_that_disagree_with_the_fact_lines(loaded: Platform) -> None:
    sku = one_fact(loaded)["sku"]
    sql(loaded, "UPDATE daily_sales SET units = units + 1 WHERE sku = :sku", sku=sku)
    failed = red(loaded)
    assert set(failed) == {"daily_sales_totals_match"}
    [offending] = failed["daily_sales_totals_match"]["offending_sample"]
    assert offending["sku"] == sku
    assert offending["daily_sales_units"] > offending["fact_units"]


def test_a_red_blocking_check_stops_the_refresh(loaded: Platform) -> None:
    sku = one_fact(loaded)["sku"]
    sql(loaded, "DELETE FROM dim_product WHERE sku = :sku", sku=sku)
    loaded.submit("east.csv", rows=12, seed=8)
    loaded.run_all()
    [request] = loaded.daemon.tick("downstream_sensor")
    result = loaded.daemon.execute(request, DOWNSTREAM_JOB)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["fact_dimensions_exist"] is False
    assert result.get_asset_materialization_events() == []  # nothing built on bad facts
