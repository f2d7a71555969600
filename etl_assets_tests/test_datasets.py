"""The shipped datasets other than sales, end to end through the real sensors and their jobs:
inventory (catalog and FX enrichment) and customers (no enrichment), and what their rows do
to the shared dimensions."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.datasets.samples import customers_frame, inventory_frame, write_csv
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.ledger import Job, JobStatus


def submit(platform: Platform, name: str, frame: object, dataset: str | None = None) -> Job:
    path = write_csv(platform.tmp_path / "in" / name, frame)  # type: ignore[arg-type]
    archive = source_archive(platform.settings.staging_dir)
    return publish_file(platform.ledger, archive, path, dataset=dataset).job


def one(platform: Platform, query: str, **params: object) -> list[tuple[object, ...]]:
    with platform.ledger.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query), params)]


def test_an_inventory_snapshot_is_enriched_converted_and_loaded(platform: Platform) -> None:
    frame = inventory_frame(seed=1, days=(dt.date(2024, 3, 31),), stores=2, skus=5)
    frame.iloc[3, frame.columns.get_loc("sku")] = "SKU-9999"  # well-formed, not in the catalog
    frame.iloc[6, frame.columns.get_loc("on_hand")] = "-1"  # stock is never negative
    job = submit(platform, "snapshot.csv", frame)  # the header says it is inventory
    assert job.dataset == "inventory"

    [result] = platform.run_all()
    assert result.success and result.dagster_run.job_name == "inventory_job"
    done = platform.ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert (done.rows_total, done.rows_loaded, done.rows_quarantined) == (10, 8, 2)
    stages = {row["stage"]: row["reason"] for row in platform.ledger.quarantined(job.job_id)}
    assert stages == {
        "enrich": "sku: SKU-9999 is not in the product catalog",
        "validate": "on_hand: '-1' is not a non-negative whole number",
    }
    [(wrong,)] = one(
        platform,
        "SELECT count(*) FROM inventory_snapshots WHERE job_id = :job AND ("
        "abs(stock_value - on_hand * unit_cost) > 0.01 OR "
        "abs(stock_value_reporting - stock_value * fx_rate) > 0.01 OR product_name = '')",
        job=job.job_id,
    )
    assert wrong == 0
    assert one(platform, "SELECT count(*) FROM dim_product")[0][0] == 5  # SKU-0001..5


def test_customer_records_fill_the_profile_of_customers_orders_name(platform: Platform) -> None:
    platform.submit("orders.csv", rows=30, seed=2)  # sales: customers with order dates
    records = customers_frame(5, seed=3, first=1)
    records.iloc[2, records.columns.get_loc("country")] = "ZZ"
    job = submit(platform, "crm.csv", records)
    assert job.dataset == "customers"
    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert (done.status, done.rows_loaded, done.rows_quarantined) == (JobStatus.COMPLETED, 4, 1)
    [reason] = [row["reason"] for row in platform.ledger.quarantined(job.job_id)]
    assert reason.startswith("country: 'ZZ' is not an ISO 3166 country code")
    profiles = dict(
        one(platform, "SELECT customer_id, email FROM dim_customer WHERE email IS NOT NULL")
    )
    assert profiles == {f"C{n:05d}": f"customer{n}@example.com" for n in (1, 2, 4, 5)}
    # A customer only the orders name keeps its order dates and has no profile yet.
    [(orders_only,)] = one(
        platform,
        "SELECT count(*) FROM dim_customer WHERE email IS NULL AND first_order_date IS NOT NULL",
    )
    assert orders_only > 0


@pytest.mark.parametrize("dataset", ["inventory", "customers"])
def test_a_file_of_another_dataset_is_refused_by_name(platform: Platform, dataset: str) -> None:
    frame = customers_frame(3) if dataset == "inventory" else inventory_frame(skus=2, stores=1)
    job = submit(platform, "wrong.csv", frame, dataset=dataset)
    platform.run_all()
    failed = platform.ledger.get(job.job_id)
    assert (failed.status, failed.error_type, failed.attempts) == (JobStatus.FAILED, "permanent", 1)
    assert "wrong.csv: missing required column(s)" in (failed.error_message or "")


def test_a_quarantined_customer_record_loads_once_fixed(platform: Platform) -> None:
    from etl_assets.pipeline.row_retry import EnrichmentClients, retry_rows
    from etl_assets.resources.apis import enrichment_clients

    records = customers_frame(4, seed=5)
    records.iloc[1, records.columns.get_loc("country")] = "XX"
    job = submit(platform, "crm.csv", records)
    platform.run_all()
    [row] = platform.ledger.quarantined(job.job_id)

    clients = EnrichmentClients(enrichment_clients(platform.settings), "EUR")
    result = retry_rows(platform.ledger, clients, row_ids=[row["id"]], fixes={"country": "de"})
    assert result.loaded == [row["id"]]
    done = platform.ledger.get(job.job_id)
    assert (done.rows_loaded, done.rows_quarantined) == (4, 0)
    [(country,)] = one(
        platform, "SELECT country FROM dim_customer WHERE customer_id = :c", c="C00002"
    )
    assert country == "DE"
