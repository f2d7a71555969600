"""The dispatch sensor: claims due pending jobs and requests their runs: one asset-job run
per job attempt, or, for small jobs, one batch run per group of them (assets/batch.py)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.partitions import add_requests
from etl_assets.resources.ledger import LedgerResource
from etl_assets.runtime.dispatching import batch_run_request, plan_runs, run_request_for

__all__ = ["batch_run_request", "build_dispatch_sensor", "plan_runs", "run_request_for"]

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_dispatch_sensor(
    jobs: Sequence["UnresolvedAssetJobDefinition"],
    batch_job: dg.JobDefinition,
    batch_size: int,
    interval_seconds: int,
    jobs_per_run: int = 1,
    small_job_bytes: int = 0,
) -> dg.SensorDefinition:
    """The dispatcher of the datasets' `jobs` and `batch_job`, claiming at most `batch_size`
    jobs per tick and running up to `jobs_per_run` jobs of at most `small_job_bytes` together."""

    @dg.sensor(
        name="dispatch_sensor",
        jobs=[*jobs, batch_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Claims up to {batch_size} due pending jobs per tick; runs each one, or up to "
            f"{jobs_per_run} small ones together."
        ),
    )
    def dispatch_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Claim due pending jobs (priority, then age) and request their runs.

        Claiming is an atomic compare-and-set in the ledger, so a second evaluation, or a
        second dispatcher, never gets the same job: only `pending` jobs are ever started.
        """
        claimed = ledger.ledger.claim_due(batch_size)
        if not claimed:
            return dg.SkipReason("no due pending jobs")
        context.log.info(f"claimed {len(claimed)} job(s): {', '.join(j.job_id for j in claimed)}")
        return dg.SensorResult(
            run_requests=plan_runs(claimed, jobs_per_run, small_job_bytes),
            # Idempotent; covers jobs submitted without access to the Dagster instance.
            dynamic_partitions_requests=add_requests(claimed),
        )

    return dispatch_sensor
