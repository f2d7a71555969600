"""The monitoring commands (`etl jobs list|show|stats`, `etl watch`, `etl doctor`) against the
hand-computed ledger of ops_seed, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import Platform
from dagster._daemon.types import DaemonHeartbeat
from ops_seed import EXPECTED, seed_ledger

from etl_assets.cli import main
from etl_assets.cli.watch_view import Refresher, duration, progress_bar
from etl_assets.db import utcnow
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.reference_api.server import Fault

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def etl(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, api: ReferenceApiServer
) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FX_API_URL", api.fx_url)
    monkeypatch.setenv("CATALOG_API_URL", api.catalog_url)
    return CliRunner()


@pytest.fixture
def seeded_at() -> dt.datetime:
    """The `now` the seed's times are relative to: cutoffs are computed from it, never from
    the live clock, which moves on while a loaded machine runs the test."""
    return utcnow().replace(microsecond=0)


@pytest.fixture
def ids(engine: sa.Engine, seeded_at: dt.datetime) -> dict[str, str]:
    return seed_ledger(engine, seeded_at)


def run_json(etl: CliRunner, *args: str) -> Any:
    result = etl.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------ jobs


def test_jobs_list_filters_sorts_and_pages(etl: CliRunner, ids: dict[str, str]) -> None:
    def listed(*args: str) -> list[str]:
        return [job["job_id"] for job in run_json(etl, "jobs", "list", *args)]

    assert len(listed()) == 11
    assert listed("--status", "failed", "--sort", "created_at") == [ids["D"], ids["C"]]
    assert set(listed("--status", "pending", "--status", "processing")) == {ids[k] for k in "EFGHI"}
    assert listed("--error-type", "transient_exhausted") == [ids["D"]]
    assert listed("--status", "failed", "--dataset", "invoices") == []
    yesterday = f"{utcnow() - dt.timedelta(days=1):%Y-%m-%d %H:%M:%S}"
    assert ids["D"] not in listed("--since", yesterday)
    assert set(listed("--until", yesterday)) == {ids["D"], ids["K"]}
    assert listed("--sort", "-priority", "--limit", "1") == [ids["G"]]

    table = etl.invoke(main, ["jobs", "list", "--limit", "2"]).output
    [hint] = [line for line in table.splitlines() if line.startswith("(2 of 11; next page")]
    cursor = hint.split("--cursor ")[1].rstrip(")")
    second = run_json(etl, "jobs", "list", "--limit", "2", "--cursor", cursor)
    assert [job["job_id"] for job in second] == listed()[2:4]
    assert etl.invoke(main, ["jobs", "list", "--cursor", "nonsense"]).exit_code == 2
    bad = etl.invoke(main, ["jobs", "list", "--status", "lost"])
    assert bad.exit_code == 2
    assert "'lost' is not one of" in bad.output
    assert etl.invoke(main, ["jobs", "list", "--limit", "0"]).exit_code == 2


def test_jobs_show_gives_progress_rate_eta_and_the_run_link(
    etl: CliRunner, ids: dict[str, str]
) -> None:
    shown = run_json(etl, "jobs", "show", ids["E"])
    progress = shown["progress"]
    assert (progress["rows_processed"], progress["rows_total"]) == (250, 1000)
    assert progress["percent_complete"] == 25.0
    assert progress["rows_per_second"] > 0 and progress["eta_seconds"] > 0
    assert shown["dagster_run_url"] == "http://127.0.0.1:3000/runs/run-e"
    text = etl.invoke(main, ["jobs", "show", ids["E"]]).output
    assert "[#####---------------]  25.0%  250/1000 rows" in text


def test_jobs_show_prints_the_whole_error_message(
    etl: CliRunner, ids: dict[str, str], engine: sa.Engine
) -> None:
    """The detail view is where an operator reads why a job failed: never cut short."""
    reason = "attempt 3/3 failed in sales/catalog_products: ConnectionError: request to " + (
        "http://catalog.internal.example:8443/v2/catalog/products failed; no attempts left"
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE jobs SET error_message = :m WHERE job_id = :j"),
            {"m": reason, "j": ids["D"]},
        )
    text = etl.invoke(main, ["jobs", "show", ids["D"]]).output
    assert f"error_message: {reason}\n" in text


def test_jobs_stats_match_the_hand_computed_figures(etl: CliRunner, ids: dict[str, str]) -> None:
    stats = run_json(etl, "jobs", "stats")
    for key, value in EXPECTED.items():
        assert stats[key] == value, key
    assert [s["job_id"] for s in stats["stuck_jobs"]] == [ids["E"]]
    assert [f["job_id"] for f in stats["recent_failures"]] == [ids["C"], ids["D"]]
    # Last hour: B completed, C failed (50 %); E has no heartbeat for 10 minutes.
    assert [a["rule"] for a in stats["alerts"]] == ["failure_rate", "stuck_jobs"]

    text = etl.invoke(main, ["jobs", "stats"]).output
    assert "completed 2, failed 1, failure rate 33.3% (all time 40.0%)" in text
    assert "average duration 200.0 s, rows loaded 297" in text
    assert "retries: 4 job(s) retried, 6 in all, 0.545 per job, at most 3" in text
    assert "queue depth by priority (3 pending)" in text
    assert ids["E"] in text


# ------------------------------------------------------------------------------ watch


def test_watch_once_draws_the_running_jobs(etl: CliRunner, ids: dict[str, str]) -> None:
    result = etl.invoke(main, ["watch", "--once"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "processing 2, pending 3" in lines[0]
    [e_line] = [line for line in lines if line.startswith(ids["E"])]
    assert "[#####---------------]  25.0%" in e_line
    assert "250/1000" in e_line
    [f_line] = [line for line in lines if line.startswith(ids["F"])]
    assert "[##########----------]  50.0%" in f_line
    assert " rows/s " in f_line

    frame = run_json(etl, "watch", "--once")
    assert (frame["active_uploads"], frame["pending_uploads"]) == (2, 3)


def test_watch_a_finished_job_stops_by_itself(etl: CliRunner, ids: dict[str, str]) -> None:
    # No --once and a long interval: the command ends because job C has finished.
    result = etl.invoke(main, ["watch", "--job", ids["C"], "--interval", "3600"])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output
    assert "last error (permanent): sales-c.csv: missing required column(s) sku" in result.output
    frames = etl.invoke(main, ["watch", "--job", ids["F"], "--interval", "0.1", "--count", "2"])
    assert frames.output.count(ids["F"]) == 2
    missing = etl.invoke(main, ["watch", "--job", "NOPE", "--once"])
    assert missing.output.strip() == "Error: job NOPE does not exist in the ledger"


def test_the_refresher_stops_on_ctrl_c() -> None:
    frames: list[int] = []

    def draw() -> bool:
        frames.append(1)
        if len(frames) == 3:
            raise KeyboardInterrupt
        return False

    assert Refresher(draw, 0.0, sleep=lambda _s: None).run() == 2
    assert Refresher(lambda: False, 0.0, count=4, sleep=lambda _s: None).run() == 4
    assert progress_bar(None).endswith("?")
    assert progress_bar(100.0) == "[" + "#" * 20 + "] 100.0%"
    assert [duration(s) for s in (None, 5, 185, 7800)] == ["-", "5s", "3m05s", "2h10m"]


# ------------------------------------------------------------------------------ doctor


def statuses(etl: CliRunner) -> tuple[int, dict[str, str]]:
    result = etl.invoke(main, ["doctor", "--json"])
    report = json.loads(result.stdout)
    assert report["ok"] == (result.exit_code == 0)
    return result.exit_code, {c["name"]: c["status"] for c in report["checks"]}


def test_doctor_on_a_healthy_set_up_without_dagster_home(etl: CliRunner) -> None:
    code, found = statuses(etl)
    assert code == 0
    assert found["database"] == found["migrations"] == "OK"
    assert found["FX API"] == found["catalog API"] == "OK"
    assert (found["Dagster home"], found["Dagster daemon"]) == ("WARN", "SKIP")
    assert found["stuck jobs"] == found["dead letters"] == "OK"
    text = etl.invoke(main, ["doctor"]).output
    assert "-> export DAGSTER_HOME=/path, then `etl dagster-home`" in text


def test_doctor_reports_stuck_jobs_and_dead_letters(etl: CliRunner, ids: dict[str, str]) -> None:
    code, found = statuses(etl)
    assert code == 0  # warnings only
    assert found["stuck jobs"] == found["dead letters"] == "WARN"
    text = etl.invoke(main, ["doctor"]).output
    assert f"1 processing job(s) without a heartbeat for over 300 s: {ids['E']}" in text
    assert "2 failed job(s) wait for an operator (1 permanent, 1 transient_exhausted)" in text


def test_doctor_checks_the_daemon_heartbeat(
    etl: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    template = str(REPO / "dagster.yaml")
    assert etl.invoke(main, ["dagster-home", "--template", template]).exit_code == 0
    code, found = statuses(etl)
    assert (code, found["Dagster home"], found["Dagster daemon"]) == (1, "OK", "FAIL")
    assert "has never sent a heartbeat" in etl.invoke(main, ["doctor"]).output

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for kind in instance.get_required_daemon_types():
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), kind, None, None))
    code, found = statuses(etl)
    assert (code, found["Dagster daemon"]) == (0, "OK")


def test_doctor_fails_on_an_unmigrated_database_and_skips_the_ledger_checks(
    etl: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, found = statuses(etl)
    assert (code, found["database"], found["migrations"]) == (1, "OK", "FAIL")
    assert found["stuck jobs"] == found["dead letters"] == "SKIP"
    assert "-> run `etl db upgrade`" in etl.invoke(main, ["doctor"]).output


def test_doctor_fails_on_an_unreachable_database_without_leaking_its_password(
    etl: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://etl:hunter2@127.0.0.1:9/etl")
    code, found = statuses(etl)
    assert (code, found["database"], found["migrations"]) == (1, "FAIL", "SKIP")
    text = etl.invoke(main, ["doctor"]).output
    assert "cannot reach postgresql://etl:***@127.0.0.1:9/etl" in text
    assert "hunter2" not in text
    assert "Traceback" not in text


def test_doctor_fails_on_a_bad_setting_or_an_api_that_is_down(
    etl: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FX_API_URL", "http://127.0.0.1:9/fx")
    code, found = statuses(etl)
    assert (code, found["FX API"], found["catalog API"]) == (1, "FAIL", "OK")

    monkeypatch.setenv("BATCH_SIZE", "many")
    code, found = statuses(etl)
    assert (code, found["configuration"]) == (1, "FAIL")
    assert set(found.values()) == {"FAIL", "SKIP"}
    assert "BATCH_SIZE='many' is not a valid int" in etl.invoke(main, ["doctor"]).output

    monkeypatch.delenv("BATCH_SIZE")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    assert "LOG_LEVEL='LOUD' is not a log level" in etl.invoke(main, ["doctor"]).output


def test_failed_rows_list_filters_by_dataset_and_dates_and_sorts(
    etl: CliRunner, ids: dict[str, str], seeded_at: dt.datetime
) -> None:
    def listed(*args: str) -> list[tuple[str, int]]:
        rows = run_json(etl, "failed-rows", "list", *args)
        return [(r["job_id"], r["row_number"]) for r in rows]

    a, c = ids["A"], ids["C"]
    assert listed() == [(c, 5), (a, 3), (a, 2)]  # newest first
    assert sorted(listed("--sort", "job_id")) == sorted([(a, 2), (a, 3), (c, 5)])
    assert listed("--job", a, "--status", "all", "--sort", "created_at") == [(a, 2), (a, 3), (a, 4)]
    assert listed("--dataset", "invoices") == []
    cutoff = f"{seeded_at - dt.timedelta(minutes=57, seconds=30):%Y-%m-%d %H:%M:%S}"
    assert listed("--until", cutoff) == [(a, 2)]
    assert listed("--since", cutoff) == [(c, 5), (a, 3)]


# ------------------------------------------------------------------------------ end to end


def test_an_operator_finds_why_a_job_failed_retries_it_and_sees_it_complete(
    platform: Platform, api: ReferenceApiServer, platform_cli: CliRunner
) -> None:
    """The issue's "done when", through the command line only."""
    etl = platform_cli
    api.faults.add(Fault("/fx", status=503))  # the FX API is down through every attempt
    job = platform.submit("outage.csv", rows=30)
    platform.run_all()

    # The symptom: an alert and a dead letter.
    stats = run_json(etl, "jobs", "stats")
    assert {"failure_rate", "retry_exhaustion"} <= {a["rule"] for a in stats["alerts"]}
    assert "1 failed job(s) wait for an operator" in etl.invoke(main, ["doctor"]).output
    # Why: the job names the step, the API and the attempts.
    [failed] = run_json(etl, "jobs", "list", "--status", "failed")
    assert (failed["job_id"], failed["error_type"]) == (job.job_id, "transient_exhausted")
    shown = etl.invoke(main, ["jobs", "show", job.job_id]).output
    assert "attempt 3/3 failed in sales/fx_rates: HTTP 503 from" in shown

    # The API is back: retry, run, and watch the job to its end.
    api.faults.clear()
    retried = etl.invoke(main, ["retry", "--all-failed", "--error-type", "transient_exhausted"])
    assert f"{job.job_id}: pending again" in retried.output
    platform.run_all()
    watched = etl.invoke(main, ["watch", "--job", job.job_id, "--interval", "3600"])
    assert watched.exit_code == 0
    assert f"{job.job_id}  outage.csv  completed" in watched.output
    assert "[####################] 100.0%  30/30 rows" in watched.output
    assert "loaded 30, quarantined 0, duplicates 0" in watched.output
    assert "retry_exhaustion" not in {a["rule"] for a in run_json(etl, "jobs", "stats")["alerts"]}
