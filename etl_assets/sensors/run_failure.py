"""Keeps the ledger true when a run fails outside any step (e.g. its resources fail to start)."""

from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.ledger import ErrorType, JobStatus
from etl_assets.ledger.errors import IllegalTransition, JobNotFound
from etl_assets.resources.ledger import LedgerResource

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_run_failure_sensor(job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    """A run-failure sensor over `job` that fails the ledger job its failed run still holds."""

    @dg.run_failure_sensor(
        name="job_run_failure_sensor",
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks a job failed when its run failed without recording it.",
    )
    def job_run_failure_sensor(context: dg.RunFailureSensorContext, ledger: LedgerResource) -> None:
        """A failed step records its own failure; this catches failures outside any step."""
        run = context.dagster_run
        job_id = run.tags.get("dagster/partition")
        if not job_id or run.tags.get("dagster/will_retry") == "true":
            return
        try:
            job_record = ledger.ledger.get(job_id)
            attempt = run.tags.get("etl/attempt")
            held_by_run = job_record.run_id == run.run_id or (
                job_record.run_id is None and attempt == str(job_record.attempts)
            )
            if job_record.status is not JobStatus.PROCESSING or not held_by_run:
                return  # the run's steps already recorded the outcome, or another run holds it
            message = context.failure_event.message or "the run failed"
            ledger.ledger.fail(
                job_id,
                error_type=ErrorType.TRANSIENT,
                message=f"attempt {job_record.attempts}: run {run.run_id} failed: {message}",
                run_id=run.run_id,
            )
            context.log.info(f"job={job_id} marked failed after run {run.run_id} failed")
        except (JobNotFound, IllegalTransition) as exc:
            context.log.info(f"job={job_id}: nothing to record ({exc})")

    return job_run_failure_sensor
