"""daily_sales and customer_rfm: started by downstream_sensor after jobs load, recomputed for
what the jobs touched, equal to a full rebuild, and checked on the way."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.datasets.samples import (
    customers_frame,
    inventory_frame,
    sales_frame,
    write_csv,
    write_sales_csv,
)
from etl_assets.downstream.assets import DOWNSTREAM_JOB
from etl_assets.downstream.base import refresh as refresh_table
from etl_assets.downstream.customer_rfm import CUSTOMER_RFM
from etl_assets.downstream.daily_sales import DAILY_SALES, totals_disagree
from etl_assets.events.store import list_events
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.pipeline.row_retry import EnrichmentClients, retry_rows
from etl_assets.resources.apis import enrichment_clients
from etl_assets.warehouse.verify import finding


def refresh(platform: Platform) -> dg.ExecuteInProcessResult | None:
    """One downstream_sensor tick and the run it requests, if any."""
    requests = platform.daemon.tick("downstream_sensor")
    if not requests:
        return None
    [request] = requests
    return platform.daemon.execute(request, DOWNSTREAM_JOB)


def load(platform: Platform, name: str, frame: pd.DataFrame) -> None:
    """Publish `frame` as a file and run every job."""
    path = write_sales_csv(platform.tmp_path / name, frame)
    publish_file(
        platform.ledger, source_archive(platform.settings.staging_dir), path, dataset="sales"
    )
    platform.run_all()


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
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    # sales loaded; stock_cover, refreshed for it, reads inventory too: both gate it
    assert {asset for asset, _ in checks} == {
        "sales/sales_fact",
        "inventory/inventory_snapshots",
        "daily_sales",
    }
    assert len(checks) == 12 and all(checks.values()), checks
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert materialized == {"daily_sales", "customer_rfm", "stock_cover"}
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


def snapshot(platform: Platform) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        table(platform, "daily_sales", "order_date, sku, store_id"),
        table(platform, "customer_rfm", "customer_id"),
    )


def test_an_incremental_refresh_recomputes_what_the_job_touched_and_equals_a_rebuild(
    platform: Platform,
) -> None:
    first = sales_frame(60, seed=1, order_prefix="A", start=dt.date(2024, 1, 1), days=10)
    second = sales_frame(30, seed=2, order_prefix="B", start=dt.date(2024, 1, 8), days=5)
    second.iloc[:3] = first.iloc[:3].to_numpy()  # an order of the first file again...
    second.iloc[:3, second.columns.get_loc("quantity")] = "7"  # ...corrected: B wins
    load(platform, "a.csv", first)
    assert refresh(platform).success  # type: ignore[union-attr]
    load(platform, "b.csv", second)

    result = refresh(platform)
    assert result is not None and result.success
    metadata = {
        m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    touched_dates = set(second["order_date"])
    assert metadata["daily_sales"]["mode"] == "incremental"
    assert metadata["daily_sales"]["jobs_absorbed"] == 1
    assert metadata["daily_sales"]["keys_recomputed"] == len(touched_dates)
    assert metadata["customer_rfm"]["keys_recomputed"] == second["customer_id"].nunique()
    incremental = snapshot(platform)

    with platform.ledger.engine.begin() as conn:  # a rebuild from scratch gives the same
        conn.execute(sa.text("DELETE FROM daily_sales"))
        conn.execute(sa.text("DELETE FROM customer_rfm"))
    refresh_table(platform.ledger.engine, DAILY_SALES, full=True)
    refresh_table(platform.ledger.engine, CUSTOMER_RFM, full=True)
    rebuilt = snapshot(platform)
    for mine, theirs in zip(incremental, rebuilt, strict=True):
        pd.testing.assert_frame_equal(mine, theirs)
    daily = incremental[0]
    corrected = first.iloc[0]
    line = daily[(daily["sku"] == corrected["sku"]) & (daily["store_id"] == corrected["store_id"])]
    assert line["units"].sum() >= 7  # the later job's quantity, not the first file's
    want = expected_daily_sales(platform)
    assert daily["units"].sum() == want["units"].sum()


def test_rfm_scores_and_segments(platform: Platform) -> None:
    platform.submit("rfm.csv", rows=300, seed=3)
    platform.run_all()
    assert refresh(platform).success  # type: ignore[union-attr]
    rfm = table(platform, "customer_rfm", "customer_id")
    with platform.ledger.engine.connect() as conn:
        facts = pd.read_sql(sa.text("SELECT * FROM sales_fact"), conn)
    by_customer = facts.groupby("customer_id").agg(
        frequency=("order_id", "nunique"), monetary=("amount_reporting", "sum")
    )
    merged = rfm.merge(by_customer.reset_index(), on="customer_id", suffixes=("", "_want"))
    assert (merged["frequency"] == merged["frequency_want"]).all()
    assert np.allclose(merged["monetary"], merged["monetary_want"])
    latest = pd.to_datetime(rfm["last_order_date"]).max()
    recency = (latest - pd.to_datetime(rfm["last_order_date"])).dt.days
    assert (rfm["recency_days"] == recency).all()
    assert rfm[["r_score", "f_score", "m_score"]].isin(range(1, 6)).all().all()
    champions = rfm[rfm["segment"] == "champions"]
    assert ((champions["r_score"] >= 4) & (champions["f_score"] >= 4)).all()
    most_recent = rfm.sort_values(["last_order_date", "customer_id"]).iloc[-1]
    assert most_recent["r_score"] == 5 and most_recent["recency_days"] == 0


def test_the_sensor_waits_for_a_refresh_in_progress(platform: Platform) -> None:
    platform.submit("north.csv", rows=12)
    platform.run_all()
    job = platform.daemon.defs.resolve_job_def(DOWNSTREAM_JOB)
    platform.daemon.instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    assert platform.daemon.tick("downstream_sensor") == []


def test_rows_retried_from_quarantine_reach_the_downstream_tables(platform: Platform) -> None:
    job = platform.submit("fixable.csv", rows=60, every=10)
    platform.run_all()
    assert refresh(platform).success  # type: ignore[union-attr]
    rows = {r["reason"].split(":")[0]: r for r in platform.ledger.quarantined(job.job_id)}
    clients = enrichment_clients(platform.settings)
    enrichment = EnrichmentClients(clients, platform.settings.reporting_currency)
    fixed = retry_rows(
        platform.ledger, enrichment, row_ids=[rows["quantity"]["id"]], fixes={"quantity": "2"}
    )
    assert len(fixed.loaded) == 1
    [event] = list_events(platform.ledger.engine, limit=1)
    assert event["payload"]["source"] == "failed-rows retry"
    assert len(event["payload"]["dates"]) == 1

    result = refresh(platform)  # the retry's event starts the next refresh
    assert result is not None and result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert table(platform, "daily_sales", "sku")["units"].sum() == (
        expected_daily_sales(platform)["units"].sum()
    )


def test_a_job_completing_during_a_refresh_waits_for_the_next_one(platform: Platform) -> None:
    # Jobs A and B share dates; the refresh takes in events up to A's only, as when B
    # completes between the refresh reading the latest event and recomputing the dates.
    load(platform, "a.csv", sales_frame(40, seed=1, order_prefix="A", days=5))
    load(platform, "b.csv", sales_frame(40, seed=2, order_prefix="B", days=5))
    first_event, second_event = sorted(e["id"] for e in list_events(platform.ledger.engine))
    engine = platform.ledger.engine

    refresh_table(engine, DAILY_SALES, up_to_event_id=first_event)
    with engine.connect() as conn:
        assert finding(conn, totals_disagree(conn)).passed  # B's rows are not in it yet
        units = conn.execute(sa.text("SELECT sum(units) FROM daily_sales")).scalar_one()
        a_units = conn.execute(
            sa.text("SELECT sum(quantity) FROM sales_fact WHERE order_id LIKE 'A%'")
        ).scalar_one()
    assert units == a_units

    refresh_table(engine, DAILY_SALES, up_to_event_id=second_event)
    with engine.connect() as conn:
        assert finding(conn, totals_disagree(conn)).passed
    assert table(platform, "daily_sales", "order_date")["units"].sum() == (
        expected_daily_sales(platform)["units"].sum()
    )


def test_each_table_refreshes_only_for_the_datasets_it_consumes(platform: Platform) -> None:
    records = customers_frame(5, seed=1)
    path = write_csv(platform.tmp_path / "crm.csv", records)
    publish_file(platform.ledger, source_archive(platform.settings.staging_dir), path)
    platform.run_all()
    [request] = platform.daemon.tick("downstream_sensor")
    assert request.asset_selection == []  # no table consumes customers...
    assert {key.asset_key.to_user_string() for key in request.asset_check_keys or []} == {
        "customers/customer_records"  # ...but its checks run
    }
    assert platform.daemon.execute(request, DOWNSTREAM_JOB).success

    platform.submit("north.csv", rows=30)
    platform.run_all()
    [request] = platform.daemon.tick("downstream_sensor")
    tables = {key.to_user_string() for key in request.asset_selection or []}
    assert tables == {"daily_sales", "customer_rfm", "stock_cover"}
    checked = {key.asset_key.to_user_string() for key in request.asset_check_keys or []}
    assert checked == {"sales/sales_fact", "inventory/inventory_snapshots", "daily_sales"}


def test_stock_cover_joins_the_latest_snapshot_with_daily_sales(platform: Platform) -> None:
    sales = sales_frame(300, seed=4, start=dt.date(2024, 3, 1), days=31, stores=2, skus=6)
    load(platform, "march.csv", sales)
    days = (dt.date(2024, 3, 15), dt.date(2024, 3, 31))  # the later snapshot counts
    stock = inventory_frame(seed=5, days=days, stores=2, skus=6)
    path = write_csv(platform.tmp_path / "stock.csv", stock)
    publish_file(platform.ledger, source_archive(platform.settings.staging_dir), path)
    platform.run_all()
    result = refresh(platform)
    assert result is not None and result.success

    cover = table(platform, "stock_cover", "store_id, sku").set_index(["store_id", "sku"])
    latest = stock[stock["snapshot_date"] == "2024-03-31"].set_index(["store_id", "sku"])
    sold = sales.assign(quantity=sales["quantity"].astype(int))
    window = sold[(sold["order_date"] >= "2024-03-04") & (sold["order_date"] <= "2024-03-31")]
    units = window.groupby(["store_id", "sku"])["quantity"].sum()
    assert len(cover) == len(latest) == 12
    for key, row in cover.iterrows():
        assert str(row["snapshot_date"]) == "2024-03-31"
        assert row["on_hand"] == int(latest.loc[key, "on_hand"])
        assert row["units_sold"] == int(units.get(key, 0))
        if row["units_sold"]:
            assert row["days_of_cover"] == pytest.approx(row["on_hand"] / (row["units_sold"] / 28))
        else:
            assert pd.isna(row["days_of_cover"])
