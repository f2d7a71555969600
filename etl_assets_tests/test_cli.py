"""The `etl` command line against a seeded ledger, and its errors for operators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SETTING_NAMES

from etl_assets.cli import main
from etl_assets.datasets.samples import sales_frame, write_sales_csv


@pytest.fixture
def etl(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_submit_then_list_show_and_stats(etl: CliRunner, tmp_path: Path) -> None:
    path = write_sales_csv(tmp_path / "north.csv", sales_frame(6))
    first = etl.invoke(main, ["submit", str(path), "--title", "North Q1", "--priority", "2"])
    assert first.exit_code == 0, first.output
    assert "submitted as" in first.output
    again = etl.invoke(main, ["submit", str(path), "--json"])
    [record] = json.loads(again.stdout)
    assert record["created"] is False
    job_id = record["job_id"]

    listed = etl.invoke(main, ["jobs", "list", "--status", "pending"])
    assert job_id in listed.output
    assert "North Q1" in listed.output
    shown = json.loads(etl.invoke(main, ["jobs", "show", job_id, "--json"]).stdout)
    assert (shown["title"], shown["priority"], shown["status"]) == ("North Q1", 2, "pending")
    stats = json.loads(etl.invoke(main, ["jobs", "stats", "--json"]).stdout)
    assert stats["counts_by_status"]["pending"] == 1
    assert "(none)" in etl.invoke(main, ["failed-rows", "list", "--job", job_id]).output


def test_unknown_job_and_dataset_are_one_line_errors(etl: CliRunner, tmp_path: Path) -> None:
    result = etl.invoke(main, ["jobs", "show", "NOPE"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: job NOPE does not exist in the ledger"
    path = write_sales_csv(tmp_path / "x.csv", sales_frame(1))
    result = etl.invoke(main, ["submit", str(path), "--dataset", "invoices"])
    assert "unknown dataset 'invoices'" in result.output


def test_an_unreachable_database_is_reported_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://etl:hunter2@127.0.0.1:9/etl")
    result = CliRunner().invoke(main, ["jobs", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the database at postgresql://etl:***@")
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_an_unmigrated_database_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(main, ["jobs", "list"])
    assert "run `etl db upgrade`" in result.output
    upgraded = CliRunner().invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0
    assert "up to date" in CliRunner().invoke(main, ["db", "current"]).output


def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://etl:hunter2@db/etl")
    monkeypatch.setenv("FX_API_TOKEN", "tok-123")
    monkeypatch.setenv("BATCH_SIZE", "7")
    shown = json.loads(CliRunner().invoke(main, ["config", "--json"]).stdout)
    assert shown["DATABASE_URL"] == "postgresql://etl:***@db/etl"
    assert shown["FX_API_TOKEN"] == "****"
    assert shown["BATCH_SIZE"] == "7"
    assert "tok-123" not in CliRunner().invoke(main, ["config"]).output


def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "many")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: setting BATCH_SIZE='many' is not a valid int"


def test_a_bad_setting_is_one_line_from_the_installed_command(tmp_path: Path) -> None:
    """The same through a real process, as an operator types `BATCH_SIZE=many etl config`:
    one line on stderr, nothing on stdout, exit status 1 (no traceback)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env |= {"BATCH_SIZE": "many", "PYTHONPATH": str(repo), "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "etl_assets.cli", "config"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == ["Error: setting BATCH_SIZE='many' is not a valid int"]


def test_dagster_home_fills_in_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import yaml

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "6")
    monkeypatch.setenv("JOB_TIMEOUT_MINUTES", "15")
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u@127.0.0.1:1/d")  # unreachable
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:secret@127.0.0.1//")
    template = Path(__file__).resolve().parents[1] / "dagster.yaml"
    result = CliRunner().invoke(main, ["dagster-home", "--template", str(template)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    assert written["concurrency"]["runs"]["max_concurrent_runs"] == 6
    assert written["run_monitoring"]["max_runtime_seconds"] == 900
    assert written["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    launcher = written["run_launcher"]
    assert launcher["class"] == "CeleryRunLauncher"
    assert launcher["config"]["broker"] == {"env": "CELERY_BROKER_URL"}  # the secret stays out
    assert "secret" not in (tmp_path / "home" / "dagster.yaml").read_text()
    assert "API pools not created" in result.output  # the storage is unreachable: it says so


def test_dagster_home_refuses_a_postgres_url_without_its_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://u:pw@h/d")
    template = Path(__file__).resolve().parents[1] / "dagster.yaml"
    result = CliRunner().invoke(main, ["dagster-home", "--template", str(template)])
    assert result.exit_code == 1
    assert "postgresql+psycopg2://h/d" in result.output
    assert "pw" not in result.output


def test_dagster_home_creates_the_api_pools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    template = Path(__file__).resolve().parents[1] / "dagster.yaml"
    result = CliRunner().invoke(main, ["dagster-home", "--template", str(template)])
    assert result.exit_code == 0, result.output
    assert "pools ready: catalog_api, fx_api" in result.output
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert {"catalog_api", "fx_api"} <= instance.event_log_storage.get_concurrency_keys()


def test_submit_finds_the_dataset_from_the_header(etl: CliRunner, tmp_path: Path) -> None:
    from etl_assets.datasets.samples import customers_frame, write_csv

    records = write_csv(tmp_path / "crm.csv", customers_frame(3))
    answer = etl.invoke(main, ["submit", str(records), "--json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.stdout)[0]["dataset"] == "customers"

    odd = tmp_path / "odd.csv"
    odd.write_text("colour,size\nred,2\n")
    refused = etl.invoke(main, ["submit", str(odd)])
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: odd.csv: its header fits no dataset (sales: ")
    assert refused.output.rstrip().endswith("name the dataset")
