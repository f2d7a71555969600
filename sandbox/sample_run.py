"""The whole flow in one command, on the embedded default (SQLite, no server): `make demo`.

1. creates CSV files of every shipped dataset (sales with invalid rows, a duplicate file and
   a broken file; inventory snapshots with an unknown product; customer records with an
   invalid email and country) in a temporary inbox, and starts the reference FX and catalog
   APIs;
2. runs the real inbox sensor (publisher), the real dispatch sensor and the real asset jobs
   on a temporary DAGSTER_HOME and SQLite database;
3. runs the real downstream sensor and job: the checks of every dataset, then daily_sales,
   customer_rfm and stock_cover;
4. prints the jobs table, row counts, warehouse totals and check results, and exits non-zero
   if any job did not end as expected, a downstream asset was not materialized or a check
   is red.

Pass --keep to keep the temporary folder and look around afterwards, e.g. with
`DAGSTER_HOME=<folder>/dagster_home dagster dev -w workspace.yaml` to see the runs in the UI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing, too


def main() -> int:
    """Run the sample flow; 0 when every job ended as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="etl-sample-"))
    try:
        return run(workdir)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path) -> int:
    """The flow itself, inside `workdir`."""
    from etl_assets.reference_api import ReferenceApiServer

    with ReferenceApiServer() as api:
        os.environ.update(
            {
                "DATA_DIR": str(workdir / "data"),
                "DATABASE_URL": f"sqlite:///{workdir / 'data' / 'etl.db'}",
                "DAGSTER_HOME": str(workdir / "dagster_home"),
                "FX_API_URL": api.fx_url,
                "CATALOG_API_URL": api.catalog_url,
                "INBOX_SETTLE_SECONDS": "0",
                "LOG_LEVEL": "WARNING",
            }
        )
        for secret in ("FX_API_TOKEN", "CATALOG_API_TOKEN"):
            os.environ.pop(secret, None)
        inbox = workdir / "data" / "inbox"
        expected = (
            make_sales(inbox / "sales")
            | make_inventory(inbox / "inventory")
            | make_customers(inbox / "customers")
        )
        started = time.perf_counter()
        jobs, downstream = run_pipeline()
        seconds = time.perf_counter() - started
        calls = dict(api.faults.calls)
    report(jobs, seconds, calls)
    report_downstream(downstream)
    return check(jobs, expected) or check_downstream(downstream)


def make_sales(inbox: Path) -> dict[str, dict[str, object]]:
    """Write the sales sample files; returns what each file's job should end as."""
    from etl_assets.datasets.samples import corrupt, sales_frame, write_sales_csv

    north = sales_frame(240, seed=1, order_prefix="NORTH")
    north_rejects = corrupt(north, every=40)
    north.iloc[100] = north.iloc[99]  # the same order line twice in one file
    south = sales_frame(150, seed=2, order_prefix="SOUTH")
    write_sales_csv(inbox / "north_q1.csv", north)
    write_sales_csv(inbox / "south_q1.csv", south)
    write_sales_csv(inbox / "north_q1_resent.csv", north)  # same content: no second job
    shutil.copy(REPO / "docs" / "sample-data" / "sales.csv", inbox / "docs_sample.csv")
    (inbox / "no_prices.csv").write_text("order_id,order_date,sku\nX1,2024-01-02,SKU-0001\n")
    return {
        "north_q1.csv": {
            "status": "completed",
            "rows_total": 240,
            "rows_quarantined": north_rejects["validate"] + north_rejects["enrich"],
            "rows_duplicate": 1,
        },
        "south_q1.csv": {"status": "completed", "rows_total": 150, "rows_quarantined": 0},
        "docs_sample.csv": {"status": "completed", "rows_quarantined": 0},
        "no_prices.csv": {"status": "failed", "error_type": "permanent"},
    }


def make_inventory(inbox: Path) -> dict[str, dict[str, object]]:
    """Write the stock snapshots: the documented sample, and the end of the quarter for the
    stores and products the orders name, with a product the catalog does not know."""
    import datetime as dt

    from etl_assets.datasets.samples import inventory_frame, write_csv

    stock = inventory_frame(seed=5, days=(dt.date(2024, 3, 31),), stores=12, skus=30)
    stock.iloc[17, stock.columns.get_loc("sku")] = "SKU-9999"
    write_csv(inbox / "stock_q1_end.csv", stock)
    shutil.copy(REPO / "docs" / "sample-data" / "inventory.csv", inbox / "docs_inventory.csv")
    return {
        "stock_q1_end.csv": {"status": "completed", "rows_total": 360, "rows_quarantined": 1},
        "docs_inventory.csv": {"status": "completed", "rows_quarantined": 0},
    }


def make_customers(inbox: Path) -> dict[str, dict[str, object]]:
    """Write the customer records: the documented sample, and the customers of the orders
    with two invalid records (an email, a country)."""
    from etl_assets.datasets.samples import customers_frame, write_csv

    records = customers_frame(60, seed=3, first=100)
    records.iloc[7, records.columns.get_loc("email")] = "not-an-email"
    records.iloc[21, records.columns.get_loc("country")] = "XX"
    write_csv(inbox / "crm_export.csv", records)
    shutil.copy(REPO / "docs" / "sample-data" / "customers.csv", inbox / "docs_customers.csv")
    return {
        "crm_export.csv": {"status": "completed", "rows_total": 60, "rows_quarantined": 2},
        "docs_customers.csv": {"status": "completed", "rows_total": 12, "rows_quarantined": 0},
    }


def run_pipeline() -> list:  # list[Job]
    """Publisher -> dispatch sensor -> runs, through the real sensors and asset job."""
    import logging

    import dagster as dg

    from etl_assets import migrations
    from etl_assets.config import Settings
    from etl_assets.db import engine_for
    from etl_assets.runtime.instance import write_dagster_home
    from etl_assets.runtime.local_daemon import LocalDaemon

    settings = Settings.from_env()
    write_dagster_home(Path(os.environ["DAGSTER_HOME"]), REPO / "dagster.yaml", settings)
    migrations.upgrade(engine_for(settings))

    from etl_assets.definitions import build_definitions
    from etl_assets.resources.ledger import LedgerResource

    defs = build_definitions(settings)
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the report below says it all
    with dg.DagsterInstance.get() as instance:
        # The broken file's failure is expected: keep its traceback in the event log only.
        daemon = LocalDaemon(defs, instance, log_level="CRITICAL")
        daemon.run_tick("inbox_sensor")  # registers the files and runs what it claims at once
        daemon.drain()
        downstream = refresh_downstream(daemon)
        ledger = LedgerResource(database_url=settings.database_url).ledger
        jobs = sorted(ledger.list_jobs(limit=1000), key=lambda job: (job.dataset, job.source_name))
        return jobs, downstream


def refresh_downstream(daemon) -> dict[str, object]:  # daemon: LocalDaemon
    """One tick of the real downstream sensor and its run: checks, daily_sales, customer_rfm."""
    from etl_assets.downstream.assets import DOWNSTREAM_JOB

    requests = daemon.tick("downstream_sensor")
    if not requests:
        return {"materialized": [], "checks": {}}
    result = daemon.execute(requests[0], DOWNSTREAM_JOB)
    return {
        "materialized": sorted(
            e.asset_key.path[-1] for e in result.get_asset_materialization_events()
        ),
        "checks": {
            f"{e.asset_key.to_user_string()}: {e.check_name}": (e.passed, e.description)
            for e in result.get_asset_check_evaluations()
        },
    }


def report_downstream(downstream: dict[str, object]) -> None:
    """Print the downstream tables and the warehouse checks."""
    import sqlalchemy as sa

    from etl_assets.cli.output import format_table
    from etl_assets.config import Settings
    from etl_assets.db import engine_for, read_connection

    with read_connection(engine_for(Settings.from_env())) as conn:
        segments = conn.execute(
            sa.text(
                "SELECT segment, count(*), round(sum(monetary), 2) FROM customer_rfm "
                "GROUP BY segment ORDER BY count(*) DESC"
            )
        ).all()
        days = conn.execute(
            sa.text("SELECT count(DISTINCT order_date), count(*) FROM daily_sales")
        ).one()
        cover = conn.execute(
            sa.text(
                "SELECT store_id, sku, on_hand, units_sold, round(days_of_cover, 1) "
                "FROM stock_cover WHERE days_of_cover IS NOT NULL "
                "ORDER BY days_of_cover, store_id, sku LIMIT 5"
            )
        ).all()
        covered = conn.execute(sa.text("SELECT count(*) FROM stock_cover")).scalar_one()
    print(f"\nDownstream assets materialized: {', '.join(downstream['materialized']) or 'none'}")
    print(f"daily_sales: {days[1]} rows over {days[0]} days")
    print(format_table(("rfm segment", "customers", "monetary"), segments))
    print(f"\nstock_cover: {covered} store/product pairs; the five closest to running out")
    print(format_table(("store", "sku", "on hand", "sold in 28 days", "days of cover"), cover))
    print("\nWarehouse checks (etl_assets/assets/checks.py)")
    checks = downstream["checks"]
    print(
        format_table(
            ("check", "result", "detail"),
            [(name, "green" if ok else "RED", why) for name, (ok, why) in sorted(checks.items())],
        )
    )


def report(jobs: list, seconds: float, calls: dict[str, int]) -> None:
    """Print the jobs table, the row counts and the warehouse totals."""
    import sqlalchemy as sa

    from etl_assets.cli.output import format_table
    from etl_assets.config import Settings
    from etl_assets.db import engine_for, read_connection

    columns = (
        "job_id",
        "dataset",
        "source_name",
        "status",
        "attempts",
        "rows_total",
        "rows_loaded",
        "rows_quarantined",
        "rows_duplicate",
        "error_type",
    )
    print("\nJobs")
    print(
        format_table(
            columns,
            ([getattr(j, c) if getattr(j, c) is not None else "-" for c in columns] for j in jobs),
        )
    )
    for job in jobs:
        if job.error_message:
            print(f"  {job.source_name}: {job.error_message}")

    totals = sa.text(
        "SELECT reporting_currency, count(*) AS lines, count(DISTINCT order_id) AS orders, "
        "sum(quantity) AS units, round(sum(amount_reporting), 2) AS revenue FROM sales_fact "
        "GROUP BY reporting_currency"
    )
    from etl_assets.datasets import all_datasets

    tables = [d.fact_table.name for d in all_datasets()]
    tables += ["dim_product", "dim_customer", "quarantined_rows"]
    with read_connection(engine_for(Settings.from_env())) as conn:
        counted = [
            (name, conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in tables
        ]
        revenue = conn.execute(totals).all()
        rejected = conn.execute(
            sa.text(
                "SELECT j.source_name, q.row_number, q.stage, q.reason FROM quarantined_rows q "
                "JOIN jobs j USING (job_id) ORDER BY j.source_name, q.row_number"
            )
        ).all()
    print("\nRow counts")
    print(format_table(("table", "rows"), counted))
    print("\nQuarantined rows (etl failed-rows list --job JOB_ID)")
    print(format_table(("file", "line", "stage", "reason"), rejected))
    print("\nSales totals")
    print(format_table(("currency", "lines", "orders", "units", "revenue"), revenue))
    fx_calls = sum(n for path, n in calls.items() if path.startswith("/fx/"))
    catalog_calls = sum(n for path, n in calls.items() if path.startswith("/catalog/"))
    print(
        f"\n{len(jobs)} jobs in {seconds:.1f} s; API calls: {fx_calls} FX (one per distinct "
        f"date per job), {catalog_calls} catalog (one per 100 distinct SKUs per job)"
    )


def check(jobs: list, expected: dict[str, dict[str, object]]) -> int:
    """0 when every job matches what was expected of it; 1 (with the reasons) otherwise."""
    problems = []
    by_name = {job.source_name: job for job in jobs}
    if set(by_name) != set(expected):
        problems.append(f"jobs for {sorted(by_name)}, expected {sorted(expected)}")
    for name, wanted in expected.items():
        job = by_name.get(name)
        if job is None:
            continue
        for field, value in wanted.items():
            if getattr(job, field) != value:
                problems.append(f"{name}: {field} is {getattr(job, field)}, expected {value}")
        if job.status == "completed":
            accounted = job.rows_loaded + job.rows_quarantined + job.rows_duplicate
            if accounted != job.rows_total:
                problems.append(f"{name}: {job.rows_total} rows in, {accounted} accounted for")
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print("\nOK: every job ended as expected; rows in = loaded + quarantined + duplicate.")
    return 0


def check_downstream(downstream: dict[str, object]) -> int:
    """0 when every downstream asset was materialized and every check of every dataset ran
    and is green."""
    from etl_assets.datasets import all_datasets
    from etl_assets.downstream.assets import DOWNSTREAM_CHECKS
    from etl_assets.downstream.registry import DOWNSTREAM
    from etl_assets.warehouse.verify import all_checks

    problems = []
    tables = sorted(table.name for table in DOWNSTREAM)
    if downstream["materialized"] != tables:
        problems.append(f"downstream assets materialized: {downstream['materialized']}")
    checks = downstream["checks"]
    wanted = sum(len(all_checks(d)) for d in all_datasets()) + len(DOWNSTREAM_CHECKS)
    if len(checks) != wanted:
        problems.append(f"{len(checks)} warehouse checks ran, expected {wanted}")
    problems += [f"check {name} is red: {why}" for name, (ok, why) in checks.items() if not ok]
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"OK: {', '.join(tables)} materialized; all {wanted} warehouse checks are green.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
