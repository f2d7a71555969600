"""The dispatch sensor: claims due pending jobs and requests their runs: one asset-job run
per job attempt, or, for small jobs, one batch run per group of them (assets/batch.py)."""

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.batch import BATCH_JOB, BATCH_TAG, JOB_TAG_PREFIX
from etl_assets.assets.partitions import add_requests
from etl_assets.datasets import get_dataset
from etl_assets.ledger import Job
from etl_assets.resources.ledger import LedgerResource

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def run_request_for(job: Job) -> dg.RunRequest:
    """The run of one claimed job attempt, on its dataset's asset job. The run_key is unique
    per attempt, because Dagster never launches a run_key twice for a sensor, not even after
    a failed run."""
    return dg.RunRequest(
        run_key=job.run_key,
        job_name=get_dataset(job.dataset).job_name,  # the sensor targets every dataset's job
        partition_key=job.job_id,
        tags={
            "etl/job_id": job.job_id,
            "etl/attempt": str(job.attempts),
            "etl/dataset": job.dataset,
            "dagster/priority": str(job.priority),
        },
    )


def batch_run_request(batch: list[Job]) -> dg.RunRequest:
    """One run of the batch job over `batch` (claimed attempts of small jobs). Each job is
    tagged with its attempt, so the reaper finds the run of any of them."""
    attempts = ",".join(job.run_key for job in batch)
    return dg.RunRequest(
        run_key=f"batch:{hashlib.sha256(attempts.encode()).hexdigest()[:24]}",
        job_name=BATCH_JOB,
        run_config={"ops": {"run_job_batch": {"config": {"job_ids": [j.job_id for j in batch]}}}},
        tags={
            BATCH_TAG: str(len(batch)),
            "dagster/priority": str(max(job.priority for job in batch)),
            **{f"{JOB_TAG_PREFIX}{job.job_id}": str(job.attempts) for job in batch},
        },
    )


def plan_runs(claimed: list[Job], jobs_per_run: int, small_job_bytes: int) -> list[dg.RunRequest]:
    """The runs for the claimed jobs (in claim order): small jobs in batches of up to
    `jobs_per_run`, every other job (and a small job left alone) in its own asset-job run."""
    small = [j for j in claimed if jobs_per_run > 1 and j.size_bytes <= small_job_bytes]
    alone = [j for j in claimed if j not in small]
    batches = [small[i : i + jobs_per_run] for i in range(0, len(small), jobs_per_run)]
    alone += [batch[0] for batch in batches if len(batch) == 1]
    return [batch_run_request(b) for b in batches if len(b) > 1] + [
        run_request_for(j) for j in alone
    ]


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
