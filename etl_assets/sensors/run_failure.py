"""Keeps the ledger true as soon as a run fails outside any step (e.g. a resource that could
not start, or a run process that died); the reaper would catch it too, but later.

Both decide alike (`recovery.ended_run_verdict`): a job its run left processing lost that
attempt without an error of its own, so it is requeued as a `timeout` (attempt `timed_out`),
whichever of the two sees the run first; this sensor adds what Dagster said about the end."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.batch import BATCH_TAG, JOB_TAG_PREFIX
from etl_assets.ledger import JobStatus
from etl_assets.ledger.errors import JobNotFound
from etl_assets.resources.ledger import LedgerResource
from etl_assets.runs.recovery import apply, ended_run_verdict
from etl_assets.runs.retries import Backoff

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def jobs_of_run(run: dg.DagsterRun) -> dict[str, str | None]:
    """The jobs a run was started for, with their attempts: one for an asset-job run (its
    partition), each job of the batch for a batch run."""
    if run.tags.get(BATCH_TAG):
        return {
            key.removeprefix(JOB_TAG_PREFIX): value
            for key, value in run.tags.items()
            if key.startswith(JOB_TAG_PREFIX)
        }
    job_id = run.tags.get("dagster/partition")
    return {job_id: run.tags.get("etl/attempt")} if job_id else {}


def build_run_failure_sensor(
    jobs: Sequence["UnresolvedAssetJobDefinition"],
    batch_job: dg.JobDefinition,
    backoff: Backoff,
) -> dg.SensorDefinition:
    """A run-failure sensor over the datasets' `jobs` and `batch_job` that requeues (or
    fails) the jobs each failed run still held."""

    @dg.run_failure_sensor(
        name="job_run_failure_sensor",
        monitored_jobs=[*jobs, batch_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requeues or fails a job whose run failed without recording it.",
    )
    def job_run_failure_sensor(context: dg.RunFailureSensorContext, ledger: LedgerResource) -> None:
        """A failed step records its own failure; this catches failures outside any step."""
        run = context.dagster_run
        if run.tags.get("dagster/will_retry") == "true":
            return
        verdict = ended_run_verdict(run, context.failure_event.message or None)
        for job_id, attempt in jobs_of_run(run).items():
            try:
                current = ledger.ledger.get(job_id)
            except JobNotFound:
                continue
            held_by_run = current.run_id == run.run_id or (
                current.run_id is None and attempt == str(current.attempts)
            )
            if current.status is not JobStatus.PROCESSING or not held_by_run:
                continue  # its steps already recorded the outcome, or another run holds it
            after = apply(ledger.ledger, context.instance, current, verdict, backoff)
            if after is not None:
                context.log.info(f"job={job_id} is {after.status.value} after its run failed")

    return job_run_failure_sensor
