"""`etl validate`: missing dates per store and gaps in the loaded data, as text and JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from conftest import Platform

from etl_assets.cli import main
from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.warehouse.completeness import date_runs

LOADED = {  # store -> days of March 2024 it has rows for
    "STORE-A": [1, 2, 4, 5],
    "STORE-B": [1, 2],
}


@pytest.fixture
def cli(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The warehouse holds LOADED, through a real job; the CLI points at it."""
    pairs = [(store, day) for store, days in LOADED.items() for day in days]
    frame = sales_frame(len(pairs), seed=9, order_prefix="GAP")
    frame["store_id"] = [store for store, _ in pairs]
    frame["order_date"] = [dt.date(2024, 3, day).isoformat() for _, day in pairs]
    path = write_sales_csv(platform.tmp_path / "gaps.csv", frame)
    publish_file(
        platform.ledger, source_archive(platform.settings.staging_dir), path, dataset="sales"
    )
    platform.run_all()
    monkeypatch.setenv("DATABASE_URL", platform.settings.database_url)
    return CliRunner()


def test_missing_dates_and_gaps_per_store(cli: CliRunner) -> None:
    args = ["validate", "--dataset", "sales", "--from", "2024-03-01", "--to", "2024-03-05"]
    result = cli.invoke(main, [*args, "--json"])
    assert result.exit_code == 1  # gaps found
    report = json.loads(result.stdout)
    assert (report["days"], report["complete"]) == (5, False)
    assert report["group_by"] == "store_id"
    stores = {s["group"]: s for s in report["groups"]}
    assert stores["STORE-A"]["missing_dates"] == ["2024-03-03"]
    assert stores["STORE-B"]["gaps"] == [{"from": "2024-03-03", "to": "2024-03-05", "days": 3}]
    assert (stores["STORE-B"]["dates_loaded"], stores["STORE-B"]["dates_missing"]) == (2, 3)
    assert report["dates_without_data"] == ["2024-03-03"]

    table = cli.invoke(main, args)
    assert table.exit_code == 1
    assert "STORE-B   2            3             2024-03-03..2024-03-05" in table.stdout
    assert "INCOMPLETE" in table.stdout


def test_a_complete_range_exits_zero(cli: CliRunner) -> None:
    result = cli.invoke(
        main,
        [
            *("validate", "--dataset", "sales", "--from", "2024-03-04", "--to", "2024-03-05"),
            *("--group", "STORE-A"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "complete: every store_id has data on every date" in result.stdout


def test_a_reversed_range_is_a_clear_error(cli: CliRunner) -> None:
    result = cli.invoke(
        main, ["validate", "--dataset", "sales", "--from", "2024-03-05", "--to", "2024-03-01"]
    )
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --to 2024-03-01 is before --from 2024-03-05"


def test_date_runs() -> None:
    days = [dt.date(2024, 1, d) for d in (5, 1, 2, 9, 3)]
    assert date_runs(days) == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 3)),
        (dt.date(2024, 1, 5), dt.date(2024, 1, 5)),
        (dt.date(2024, 1, 9), dt.date(2024, 1, 9)),
    ]


def test_a_dataset_without_completeness_columns_says_so(cli: CliRunner) -> None:
    result = cli.invoke(
        main, ["validate", "--dataset", "customers", "--from", "2024-03-01", "--to", "2024-03-02"]
    )
    assert result.exit_code == 1
    assert "dataset 'customers' declares no completeness columns" in result.output
