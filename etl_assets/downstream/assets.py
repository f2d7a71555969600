"""Downstream assets of the warehouse: `daily_sales` and `customer_rfm`, and what starts them.

Both are unpartitioned SQL tables that depend on `sales_fact` (so the lineage graph shows
them below it) and are recomputed incrementally from the `transaction.parsed` events of the
jobs that loaded since their watermark (see `etl_assets.downstream.tables`).

Why a sensor and not declarative automation: an unpartitioned asset below the per-job
dynamic partitions depends on *every* job partition, and `AutomationCondition.eager()` does
not fire while any parent partition is missing or in progress, which is always true of a
platform that has pending, running or failed jobs. `downstream_sensor` watches the events
table instead: when a `transaction.parsed` event is newer than a table's watermark and no
refresh is running, it requests one `downstream_job` run for all new events at once (a burst
of small jobs costs one run, not one per job). The job also runs the warehouse checks on
`sales_fact` first; they are blocking, so a red one stops the refresh.
"""

from typing import TYPE_CHECKING, Any, Optional

import dagster as dg

from etl_assets.assets.sales import sales_fact
from etl_assets.db import read_connection
from etl_assets.downstream.tables import (
    Refresh,
    latest_event_id,
    refresh_customer_rfm,
    refresh_daily_sales,
    watermark,
)
from etl_assets.resources.ledger import LedgerResource

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DOWNSTREAM_JOB = "downstream_job"
DOWNSTREAM_TABLES = ("daily_sales", "customer_rfm")
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class RefreshConfig(dg.Config):
    """Which events a refresh absorbs (the sensor sets `up_to_event_id`; none: the latest)."""

    up_to_event_id: Optional[int] = None  # noqa: UP045 - Dagster's config reads Optional
    full_refresh: bool = False  # rebuild the whole table, e.g. after a repair


def _metadata(refresh: Refresh) -> dict[str, Any]:
    return {
        "mode": "full" if refresh.full else "incremental",
        "events": f"{refresh.after_event_id + 1}..{refresh.up_to_event_id}"
        if refresh.up_to_event_id > refresh.after_event_id
        else "none",
        "jobs_absorbed": len(refresh.events),
        "keys_recomputed": refresh.keys,
        "rows_written": refresh.rows,
    }


def _refreshed(context: dg.AssetExecutionContext, refresh: Refresh) -> dg.MaterializeResult:
    metadata = _metadata(refresh)
    context.log.info(f"{refresh.table} refreshed: {metadata}")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(deps=[sales_fact], group_name="downstream", kinds={"sql"})
def daily_sales(
    context: dg.AssetExecutionContext, config: RefreshConfig, ledger: LedgerResource
) -> dg.MaterializeResult:
    """Revenue (reporting currency), units, orders and lines per day, product and store,
    from the fact rows of completed jobs; recomputed for the dates new jobs touched."""
    return _refreshed(
        context,
        refresh_daily_sales(
            ledger.engine, up_to_event_id=config.up_to_event_id, full=config.full_refresh
        ),
    )


@dg.asset(deps=[sales_fact], group_name="downstream", kinds={"sql"})
def customer_rfm(
    context: dg.AssetExecutionContext, config: RefreshConfig, ledger: LedgerResource
) -> dg.MaterializeResult:
    """Recency, frequency, monetary value, 1-5 scores and an RFM segment per customer;
    aggregates recomputed for the customers new jobs touched, scores for everyone."""
    return _refreshed(
        context,
        refresh_customer_rfm(
            ledger.engine, up_to_event_id=config.up_to_event_id, full=config.full_refresh
        ),
    )


DOWNSTREAM_ASSETS = [daily_sales, customer_rfm]


def build_downstream_job(checks: dg.AssetSelection) -> "UnresolvedAssetJobDefinition":
    """The refresh job: the checks in `checks` (blocking ones gate the assets), then both
    downstream tables, in the run's own process."""
    return dg.define_asset_job(
        name=DOWNSTREAM_JOB,
        selection=dg.AssetSelection.assets(*DOWNSTREAM_ASSETS) | checks,
        executor_def=dg.in_process_executor,
        description="Check the warehouse, then refresh daily_sales and customer_rfm.",
    )


def build_downstream_sensor(
    job: "UnresolvedAssetJobDefinition", interval_seconds: int
) -> dg.SensorDefinition:
    """Requests a refresh run when jobs loaded since the downstream tables' watermarks."""

    @dg.sensor(
        name="downstream_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def downstream_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Starts daily_sales and customer_rfm (and the warehouse checks) after jobs load."""
        with read_connection(ledger.engine) as conn:
            latest = latest_event_id(conn)
            behind = min(watermark(conn, name) for name in DOWNSTREAM_TABLES)
        if latest <= behind:
            return dg.SkipReason(f"downstream tables are up to date (event {latest})")
        running = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1
        )
        if running:
            return dg.SkipReason(f"run {running[0].run_id} is refreshing; waiting for it")
        config = {"up_to_event_id": latest}
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    # One run per newest event: Dagster never launches a run_key twice.
                    run_key=f"events-through-{latest}",
                    run_config={"ops": {name: {"config": config} for name in DOWNSTREAM_TABLES}},
                    tags={"etl/events_through": str(latest)},
                )
            ]
        )

    return downstream_sensor
