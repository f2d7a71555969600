"""Asset checks on the warehouse: what must hold before anyone trusts or builds on it.

The checks on `sales_fact` are warehouse-wide (not per job partition) and blocking: they
run first in every `downstream_job` run, and a red one stops daily_sales and customer_rfm
from being refreshed on top of bad facts. They are evaluated in one step
(`sales_fact_checks`): a red blocking check fails its step and Dagster then skips the run's
other steps, so separate steps would leave the later checks unevaluated. The totals check on
`daily_sales` runs after the refresh. A red check carries `offending_count` and a sample of
at most 20 offending keys (`offending_sample`) in its metadata; the SQL lives in
`etl_assets.warehouse.verify`.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa

from etl_assets.assets.sales import sales_fact
from etl_assets.db import read_connection
from etl_assets.downstream.assets import daily_sales
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.warehouse import verify

Verification = Callable[[sa.Connection], verify.Finding]

# name -> (what it verifies, what one offending item is)
FACT_CHECKS = {
    "fact_dimensions_exist": (
        "Every fact row's product is in dim_product and its customer in dim_customer.",
        "fact rows without their product or customer dimension",
    ),
    "fact_jobs_completed": (
        "Every fact row carries the job id of a completed job (jobs still loading excepted).",
        "jobs with rows in the warehouse that are not completed",
    ),
    "job_rows_balance": (
        "Per completed job, rows in = loaded + quarantined + duplicate.",
        "completed jobs whose rows do not add up",
    ),
    "no_duplicate_natural_keys": (
        "No natural key (order_id, sku) is held by two fact rows.",
        "natural keys held by more than one fact row",
    ),
    "fx_conversion_present": (
        "Every fact row has an FX rate and its amount in the reporting currency.",
        "fact rows without a usable conversion to the reporting currency",
    ),
}


def _fact_verifications(reporting_currency: str) -> dict[str, Verification]:
    return {
        "fact_dimensions_exist": verify.facts_without_dimensions,
        "fact_jobs_completed": verify.facts_of_unfinished_jobs,
        "job_rows_balance": verify.unbalanced_jobs,
        "no_duplicate_natural_keys": verify.duplicate_natural_keys,
        "fx_conversion_present": lambda conn: verify.facts_without_fx(conn, reporting_currency),
    }


def check_result(
    asset_key: dg.AssetKey, check_name: str, finding: verify.Finding, what: str
) -> dg.AssetCheckResult:
    """The check's result: green, or red with the count and a sample of offending keys."""
    metadata: dict[str, Any] = {"offending_count": finding.count, **finding.figures}
    if not finding.passed:
        metadata["offending_sample"] = dg.MetadataValue.json(finding.sample)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"{finding.count} {what}" if not finding.passed else f"no {what}",
    )


def _run(ledger: LedgerResource, verification: Verification) -> verify.Finding:
    with read_connection(ledger.engine) as conn:
        return verification(conn)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=sales_fact, description=doc, blocking=True)
        for name, (doc, _what) in FACT_CHECKS.items()
    ],
    name="sales_fact_checks",
)
def sales_fact_checks(
    ledger: LedgerResource, pipeline: PipelineSettingsResource
) -> Iterator[dg.AssetCheckResult]:
    """The warehouse-wide checks of sales_fact, all evaluated before any of them blocks."""
    verifications = _fact_verifications(pipeline.reporting_currency)
    for name, (_doc, what) in FACT_CHECKS.items():
        yield check_result(sales_fact.key, name, _run(ledger, verifications[name]), what)


@dg.asset_check(asset=daily_sales)
def daily_sales_totals_match(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Per product, the fact lines daily_sales has absorbed sum to its aggregate there
    (revenue, units, lines): the totals invariant."""
    what = "products whose daily_sales totals differ from their fact lines"
    finding = _run(ledger, verify.totals_disagree)
    return check_result(daily_sales.key, "daily_sales_totals_match", finding, what)


WAREHOUSE_CHECKS = [sales_fact_checks, daily_sales_totals_match]
