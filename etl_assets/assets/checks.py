"""Asset checks of each dataset's fact table, built from its declaration.

The checks are warehouse-wide (not per job partition) and run in `downstream_job`, before the
downstream tables that consume the dataset are refreshed: a red blocking check stops them
from being refreshed on top of bad rows. A dataset's checks are evaluated in one step
(`<dataset>_checks`): a red blocking check fails its step and Dagster then skips the run's
other steps, so separate steps would leave the later checks unevaluated. A red check carries
`offending_count` and a sample of at most 20 offending keys (`offending_sample`) in its
metadata; the SQL is built in `etl_assets.warehouse.verify`.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from etl_assets.datasets.base import Check, CheckContext, Dataset
from etl_assets.db import read_connection
from etl_assets.warehouse import verify


def check_result(
    asset_key: dg.AssetKey,
    check_name: str,
    finding: verify.Finding,
    what: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """The check's result: green, or red with the count and a sample of offending keys."""
    metadata: dict[str, Any] = {"offending_count": finding.count, **finding.figures}
    if not finding.passed:
        metadata["offending_sample"] = dg.MetadataValue.json(finding.sample)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=finding.passed,
        severity=severity,
        metadata=metadata,
        description=f"{finding.count} {what}" if not finding.passed else f"no {what}",
    )


def build_fact_checks(dataset: Dataset, fact_key: dg.AssetKey) -> dg.AssetChecksDefinition:
    """One multi-check over the dataset's fact table: every check `verify.all_checks` lists."""
    checks = verify.all_checks(dataset)

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                check.name, asset=fact_key, description=check.description, blocking=check.blocking
            )
            for check in checks
        ],
        name=f"{dataset.name}_checks",
        required_resource_keys={"ledger", "pipeline"},
    )
    def fact_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """The dataset's warehouse-wide checks, all evaluated before any of them blocks."""
        check_context = CheckContext(dataset, context.resources.pipeline.reporting_currency)
        with read_connection(context.resources.ledger.engine) as conn:
            for check in checks:
                yield _result(conn, fact_key, check, check_context)

    return fact_checks


def _result(
    conn: Any, fact_key: dg.AssetKey, check: Check, context: CheckContext
) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN
    finding = verify.run_check(conn, check, context)
    return check_result(fact_key, check.name, finding, check.what, severity)
