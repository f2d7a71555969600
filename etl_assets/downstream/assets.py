"""The downstream tables as Dagster assets, the job that refreshes them, and their check.

Each table (downstream/registry.py) is an unpartitioned asset that depends on the fact tables
of the datasets it consumes (and on the downstream tables it reads), so the lineage graph
shows it below them. `downstream_job` holds every downstream asset and every dataset's fact
checks; the downstream sensor (sensors/downstream.py) runs the part of it that new loads call
for: the tables whose datasets loaded, after the checks of those datasets, which are
blocking, so a red one stops the refresh.

Why a sensor and not declarative automation: an unpartitioned asset below the per-job
dynamic partitions depends on *every* job partition, and `AutomationCondition.eager()` does
not fire while any parent partition is missing or in progress, which is always true of a
platform that has pending, running or failed jobs.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import dagster as dg

from etl_assets.assets.checks import check_result
from etl_assets.assets.factory import DatasetDefinitions, fact_key
from etl_assets.datasets import get_dataset
from etl_assets.db import read_connection
from etl_assets.downstream.base import Downstream, Refresh, refresh
from etl_assets.downstream.daily_sales import daily_sales, totals_disagree
from etl_assets.downstream.registry import DOWNSTREAM
from etl_assets.resources.ledger import LedgerResource
from etl_assets.warehouse import verify

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DOWNSTREAM_JOB = "downstream_job"
GROUP = "downstream"


class RefreshConfig(dg.Config):
    """Which events a refresh absorbs (the sensor sets `up_to_event_id`; none: the latest)."""

    up_to_event_id: Optional[int] = None  # noqa: UP045 - Dagster's config reads Optional
    full_refresh: bool = False  # rebuild the whole table, e.g. after a repair


def downstream_key(table: Downstream) -> dg.AssetKey:
    """The asset key of a downstream table: its name."""
    return dg.AssetKey(table.name)


def _metadata(result: Refresh) -> dict[str, Any]:
    return {
        "mode": "full" if result.full else "incremental",
        "events": f"{result.after_event_id + 1}..{result.up_to_event_id}"
        if result.up_to_event_id > result.after_event_id
        else "none",
        "jobs_absorbed": len(result.events),
        "keys_recomputed": result.keys,
        "rows_written": result.rows,
    }


def build_downstream_asset(table: Downstream) -> dg.AssetsDefinition:
    """The asset of one downstream table."""
    deps = [fact_key(get_dataset(name)) for name in table.consumes]
    deps += [dg.AssetKey(name) for name in table.reads]

    @dg.asset(
        name=table.name,
        deps=deps,
        group_name=GROUP,
        kinds={"sql"},
        description=table.description,
    )
    def refreshed(
        context: dg.AssetExecutionContext, config: RefreshConfig, ledger: LedgerResource
    ) -> dg.MaterializeResult:
        """Recompute the table for what the new loads of its datasets touched."""
        result = refresh(
            ledger.engine, table, up_to_event_id=config.up_to_event_id, full=config.full_refresh
        )
        metadata = _metadata(result)
        context.log.info(f"{table.name} refreshed: {metadata}")
        return dg.MaterializeResult(metadata=metadata)

    return refreshed


DAILY_SALES_KEY = dg.AssetKey(daily_sales.name)


@dg.asset_check(asset=DAILY_SALES_KEY, name="daily_sales_totals_match")
def daily_sales_totals_match(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Per product, the fact lines daily_sales has absorbed sum to its aggregate there
    (revenue, units, lines): the totals invariant."""
    what = "products whose daily_sales totals differ from their fact lines"
    with read_connection(ledger.engine) as conn:
        finding = verify.finding(conn, totals_disagree(conn))
    return check_result(DAILY_SALES_KEY, "daily_sales_totals_match", finding, what)


DOWNSTREAM_CHECKS = [daily_sales_totals_match]


def build_downstream_job(
    assets: Sequence[dg.AssetsDefinition], datasets: Sequence[DatasetDefinitions]
) -> "UnresolvedAssetJobDefinition":
    """The refresh job: the downstream tables and every dataset's fact checks (a run picks
    the part it needs), in the run's own process."""
    checks = dg.AssetSelection.checks(*(d.checks for d in datasets))
    return dg.define_asset_job(
        name=DOWNSTREAM_JOB,
        selection=dg.AssetSelection.assets(*assets) | checks,
        executor_def=dg.in_process_executor,
        description="Check the datasets that loaded, then refresh the tables built from them.",
    )


def build_downstream_assets() -> list[dg.AssetsDefinition]:
    """Every downstream table's asset."""
    return [build_downstream_asset(table) for table in DOWNSTREAM]
