"""Asset checks on the warehouse: what must hold before anyone trusts or builds on it.

The checks on `sales_fact` are warehouse-wide (not per job partition) and blocking: they
run first in every `downstream_job` run, and a red one stops daily_sales and customer_rfm
from being refreshed on top of bad facts. The totals check on `daily_sales` runs after it.
A failed check carries `offending_count` and a sample of at most 20 offending keys
(`offending_sample`) in its metadata; the SQL lives in `etl_assets.warehouse.verify`.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg
import sqlalchemy as sa

from etl_assets.assets.downstream import daily_sales
from etl_assets.assets.sales import sales_fact
from etl_assets.db import read_connection
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.warehouse import verify


def _result(finding: verify.Finding, what: str) -> dg.AssetCheckResult:
    """The check's result: green, or red with the count and a sample of offending keys."""
    metadata: dict[str, Any] = {
        "offending_count": finding.count,
        **finding.figures,
    }
    if not finding.passed:
        metadata["offending_sample"] = dg.MetadataValue.json(finding.sample)
    description = f"{finding.count} {what}" if not finding.passed else f"no {what}"
    return dg.AssetCheckResult(
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=description,
    )


def _run(
    ledger: LedgerResource, verification: Callable[[sa.Connection], verify.Finding]
) -> verify.Finding:
    with read_connection(ledger.engine) as conn:
        return verification(conn)


@dg.asset_check(asset=sales_fact, blocking=True)
def fact_dimensions_exist(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every fact row's product is in dim_product and its customer in dim_customer."""
    finding = _run(ledger, verify.facts_without_dimensions)
    return _result(finding, "fact rows without their product or customer dimension")


@dg.asset_check(asset=sales_fact, blocking=True)
def fact_jobs_completed(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every fact row carries the job id of a completed job (jobs still loading excepted)."""
    finding = _run(ledger, verify.facts_of_unfinished_jobs)
    return _result(finding, "jobs with rows in the warehouse that are not completed")


@dg.asset_check(asset=sales_fact, blocking=True)
def job_rows_balance(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Per completed job, rows in = loaded + quarantined + duplicate."""
    finding = _run(ledger, verify.unbalanced_jobs)
    return _result(finding, "completed jobs whose rows do not add up")


@dg.asset_check(asset=sales_fact, blocking=True)
def no_duplicate_natural_keys(ledger: LedgerResource) -> dg.AssetCheckResult:
    """No natural key (order_id, sku) is held by two fact rows."""
    finding = _run(ledger, verify.duplicate_natural_keys)
    return _result(finding, "natural keys held by more than one fact row")


@dg.asset_check(asset=sales_fact, blocking=True)
def fx_conversion_present(
    ledger: LedgerResource, pipeline: PipelineSettingsResource
) -> dg.AssetCheckResult:
    """Every fact row has an FX rate and its amount in the reporting currency."""
    currency = pipeline.reporting_currency
    finding = _run(ledger, lambda conn: verify.facts_without_fx(conn, currency))
    return _result(finding, f"fact rows without a usable conversion to {currency}")


@dg.asset_check(asset=daily_sales)
def daily_sales_totals_match(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Per product, the fact lines it has absorbed sum to its aggregate in daily_sales
    (revenue, units, lines): the totals invariant."""
    finding = _run(ledger, verify.totals_disagree)
    return _result(finding, "products whose daily_sales totals differ from their fact lines")


FACT_CHECKS = [
    fact_dimensions_exist,
    fact_jobs_completed,
    job_rows_balance,
    no_duplicate_natural_keys,
    fx_conversion_present,
]
WAREHOUSE_CHECKS = [*FACT_CHECKS, daily_sales_totals_match]
