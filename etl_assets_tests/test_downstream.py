"""daily_sales and customer_rfm: started by downstream_sensor after jobs load, recomputed for
what the jobs touched, equal to a full rebuild, and checked on the way."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.assets.downstream import DOWNSTREAM_JOB


def refresh(platform: Platform) -> dg.ExecuteInProcessResult | None:
    """One downstream_sensor tick and the run it requests, if any."""
    requests = platform.daemon.tick("downstream_sensor")
    if not requests:
        return None
    [request] = requests
    return platform.daemon.execute(request, DOWNSTREAM_JOB)


def table(platform: Platform, name: str, order: str) -> pd.DataFrame:
    with platform.ledger.engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM {name} ORDER BY {order}"), conn)
    return frame.drop(columns=["updated_at"])


def expected_daily_sales(platform: Platform) -> pd.DataFrame:
    with platform.ledger.engine.connect() as conn:
        facts = pd.read_sql(sa.text("SELECT * FROM sales_fact"), conn)
    grouped = facts.groupby(["order_date", "sku", "store_id"]).agg(
        revenue=("amount_reporting", "sum"),
        units=("quantity", "sum"),
        orders=("order_id", "nunique"),
        lines=("order_id", "size"),
    )
    return grouped.reset_index()


def test_jobs_loading_start_the_refresh_and_checks_go_green(platform: Platform) -> None:
    assert platform.daemon.tick("downstream_sensor") == []  # nothing loaded yet
    platform.submit("north.csv", rows=60, every=7)
    platform.submit("south.csv", rows=45, seed=1)
    platform.run_all()

    result = refresh(platform)
    assert result is not None and result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert len(checks) == 6 and all(checks.values()), checks
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert materialized == {"daily_sales", "customer_rfm"}
    assert refresh(platform) is None  # up to date: the next tick skips

    daily = table(platform, "daily_sales", "order_date, sku, store_id")
    want = expected_daily_sales(platform)
    assert len(daily) == len(want)
    assert daily["revenue"].sum() == pytest.approx(want["revenue"].sum())
    assert daily["units"].sum() == want["units"].sum()
    assert set(table(platform, "customer_rfm", "customer_id")["segment"]) <= {
        "champions",
        "loyal",
        "new",
        "at_risk",
        "hibernating",
        "needs_attention",
    }
