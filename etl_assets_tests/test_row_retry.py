"""Quarantined rows, retried once fixed: loaded under their job, counted, never lost."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import Platform

from etl_assets.cli import main
from etl_assets.ledger import JobStatus
from etl_assets.ledger.quarantine import list_rows
from etl_assets.pipeline.row_retry import EnrichmentClients, retry_rows
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.reference_api.server import Fault
from etl_assets.resources.apis import enrichment_clients


def enrichment(platform: Platform) -> EnrichmentClients:
    clients = enrichment_clients(platform.settings)
    return EnrichmentClients(clients, platform.settings.reporting_currency)


def invariant_holds(platform: Platform, job_id: str) -> bool:
    job = platform.ledger.get(job_id)
    open_rows = len(platform.ledger.quarantined(job_id))
    return (
        job.rows_quarantined == open_rows
        and job.rows_total == job.rows_loaded + job.rows_quarantined + job.rows_duplicate
    )


def completed_job_with_bad_rows(platform: Platform) -> str:
    # every 10th row has a defect: order_date, quantity, customer_id, unit_price, currency, sku
    job = platform.submit("fixable.csv", rows=60, every=10)
    platform.run_all()
    assert platform.ledger.get(job.job_id).rows_quarantined == 6
    return job.job_id


def test_a_fixed_row_is_loaded_and_counted(platform: Platform) -> None:
    job_id = completed_job_with_bad_rows(platform)
    rows = {r["reason"].split(":")[0]: r for r in platform.ledger.quarantined(job_id)}

    result = retry_rows(
        platform.ledger, enrichment(platform), row_ids=[rows["quantity"]["id"]],
        fixes={"quantity": "2"},
    )  # fmt: skip

    assert result.loaded == [rows["quantity"]["id"]]
    job = platform.ledger.get(job_id)
    assert (job.rows_loaded, job.rows_quarantined) == (55, 5)
    assert platform.facts(job_id) == 55
    assert invariant_holds(platform, job_id)
    [row] = list_rows(platform.ledger.engine, ids=[rows["quantity"]["id"]], status=None)
    assert (row["status"], row["retry_count"], row["raw_row"]["quantity"]) == ("loaded", 1, "2")


def test_rows_that_still_fail_stay_with_their_new_reason(platform: Platform) -> None:
    job_id = completed_job_with_bad_rows(platform)
    result = retry_rows(platform.ledger, enrichment(platform), job_id=job_id)
    assert result.loaded == []
    assert len(result.still_failing) == 6
    assert all(r["retry_count"] == 1 for r in platform.ledger.quarantined(job_id))
    assert invariant_holds(platform, job_id)


def test_reference_data_fixed_upstream(platform: Platform) -> None:
    """The unknown SKU row passes once the row points at a product the catalog has."""
    job_id = completed_job_with_bad_rows(platform)
    [unknown] = [r for r in platform.ledger.quarantined(job_id) if r["stage"] == "enrich"]
    result = retry_rows(
        platform.ledger, enrichment(platform), row_ids=[unknown["id"]], fixes={"sku": "SKU-0500"}
    )
    assert result.loaded == [unknown["id"]]
    assert invariant_holds(platform, job_id)


def test_a_row_whose_key_is_already_loaded_counts_as_duplicate(platform: Platform) -> None:
    job_id = completed_job_with_bad_rows(platform)
    rows = {r["reason"].split(":")[0]: r for r in platform.ledger.quarantined(job_id)}
    # point the row at the order line of line 2, which is in the warehouse already
    with platform.ledger.engine.connect() as conn:
        order_id, sku = conn.exec_driver_sql(
            "SELECT order_id, sku FROM sales_fact WHERE source_row = 2"
        ).one()
    result = retry_rows(
        platform.ledger, enrichment(platform), row_ids=[rows["quantity"]["id"]],
        fixes={"quantity": "1", "order_id": order_id, "sku": sku},
    )  # fmt: skip
    assert result.duplicate == [rows["quantity"]["id"]]
    job = platform.ledger.get(job_id)
    assert (job.rows_loaded, job.rows_duplicate, job.rows_quarantined) == (54, 1, 5)
    assert invariant_holds(platform, job_id)


def test_rows_of_unfinished_jobs_are_skipped(platform: Platform) -> None:
    job = platform.submit("all_bad.csv", rows=3, every=1)
    platform.run_all()
    assert platform.ledger.get(job.job_id).status is JobStatus.FAILED
    result = retry_rows(platform.ledger, enrichment(platform), job_id=job.job_id)
    assert len(result.skipped) == 3
    assert "retry the job itself" in next(iter(result.skipped.values()))


# ------------------------------------------------------------------------------ the CLI


def test_failed_rows_commands(platform: Platform, platform_cli: CliRunner) -> None:
    job_id = completed_job_with_bad_rows(platform)
    listed = json.loads(
        platform_cli.invoke(main, ["failed-rows", "list", "--job", job_id, "--json"]).stdout
    )
    assert len(listed) == 6
    assert (
        platform_cli.invoke(main, ["failed-rows", "list", "--since", "2000-01-01"]).output.count(
            job_id
        )
        == 6
    )
    [quantity] = [r for r in listed if r["reason"].startswith("quantity")]

    result = platform_cli.invoke(
        main, ["failed-rows", "retry", str(quantity["id"]), "--set", "quantity=3", "--json"]
    )
    assert json.loads(result.stdout)["loaded"] == [quantity["id"]]
    loaded = platform_cli.invoke(
        main, ["failed-rows", "list", "--status", "loaded", "--json"]
    ).stdout
    assert [r["id"] for r in json.loads(loaded)] == [quantity["id"]]
    bad = platform_cli.invoke(main, ["failed-rows", "retry", "--set", "oops"])
    assert "give ROW_IDS or --job" in bad.output


def test_failed_rows_retry_while_an_api_is_down_is_one_line(
    platform: Platform,
    platform_cli: CliRunner,
    api: ReferenceApiServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No traceback: which API, and to try again later; the row stays quarantined."""
    job_id = completed_job_with_bad_rows(platform)
    [unknown] = [r for r in platform.ledger.quarantined(job_id) if r["stage"] == "enrich"]
    retry = ["failed-rows", "retry", str(unknown["id"]), "--set", "sku=SKU-0500"]

    monkeypatch.setenv("CATALOG_API_URL", "http://127.0.0.1:9/catalog")  # nothing listens
    down = platform_cli.invoke(main, retry)
    assert down.exit_code == 1
    assert down.output.startswith("Error: the catalog API at http://127.0.0.1:9/catalog is ")
    assert "unreachable or failing" in down.output and "try again later" in down.output
    assert "Traceback" not in down.output and len(down.output.splitlines()) == 1
    assert isinstance(down.exception, SystemExit)  # handled, not a crash

    monkeypatch.setenv("CATALOG_API_URL", platform.settings.catalog_api_url)
    api.faults.add(Fault("/catalog", status=401))
    refused = platform_cli.invoke(main, retry)
    assert refused.exit_code == 1
    assert (
        "the catalog API at" in refused.output and "refused the request (HTTP 401" in refused.output
    )
    assert "Traceback" not in refused.output
    [row] = list_rows(platform.ledger.engine, ids=[unknown["id"]], status=None)
    assert row["status"] == "quarantined"

    api.faults.clear()
    fixed = platform_cli.invoke(main, retry)
    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout.startswith("loaded: 1")  # stderr carries the event log line


def test_retry_and_cancel_commands(platform: Platform, platform_cli: CliRunner) -> None:
    dead = platform.submit("dead.csv", rows=3, every=1)  # every row invalid: permanent
    platform.run_all()
    pending = platform.submit("waiting.csv", rows=3, seed=9)

    retried = json.loads(platform_cli.invoke(main, ["retry", dead.job_id, "--json"]).stdout)
    assert (retried[0]["status"], retried[0]["priority"]) == ("pending", 10)
    assert "no failed jobs matched" in platform_cli.invoke(main, ["retry", "--all-failed"]).output
    usage = platform_cli.invoke(main, ["retry", dead.job_id, "--all-failed"])
    assert usage.exit_code == 2

    cancelled = platform_cli.invoke(main, ["cancel", pending.job_id])
    assert cancelled.exit_code == 0, cancelled.output
    assert platform.ledger.get(pending.job_id).status is JobStatus.CANCELLED
    again = platform_cli.invoke(main, ["cancel", pending.job_id])
    assert "cannot move from cancelled to cancelled" in again.output

    platform.run_all()  # the retried job fails again (its rows are still invalid)
    by_type = platform_cli.invoke(
        main, ["retry", "--all-failed", "--error-type", "permanent", "--json"]
    )
    assert [j["job_id"] for j in json.loads(by_type.stdout)] == [dead.job_id]
