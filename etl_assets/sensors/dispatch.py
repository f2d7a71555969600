"""The dispatch sensor: claims due pending jobs and requests one run per job attempt."""

from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.ledger import Job
from etl_assets.partitions import job_partitions
from etl_assets.resources.ledger import LedgerResource

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def run_request_for(job: Job) -> dg.RunRequest:
    """The run of one claimed job attempt. The run_key is unique per attempt, because Dagster
    never launches a run_key twice for a sensor, not even after a failed run."""
    return dg.RunRequest(
        run_key=job.run_key,
        partition_key=job.job_id,
        tags={
            "etl/job_id": job.job_id,
            "etl/attempt": str(job.attempts),
            "etl/dataset": job.dataset,
            "dagster/priority": str(job.priority),
        },
    )


def build_dispatch_sensor(
    job: "UnresolvedAssetJobDefinition", batch_size: int, interval_seconds: int
) -> dg.SensorDefinition:
    """The dispatcher of `job`, claiming at most `batch_size` jobs per tick."""

    @dg.sensor(
        name="dispatch_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Claims up to {batch_size} due pending jobs per tick and runs each one.",
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
            run_requests=[run_request_for(j) for j in claimed],
            # Idempotent; covers jobs submitted without access to the Dagster instance.
            dynamic_partitions_requests=[
                job_partitions.build_add_request([j.job_id for j in claimed])
            ],
        )

    return dispatch_sensor
