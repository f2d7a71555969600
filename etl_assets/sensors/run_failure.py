"""Keeps the ledger true as soon as a run fails outside any step (e.g. a resource that could
not start, or a run process that died); the reaper would catch it too, but later."""

from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.ledger import ErrorType, JobStatus
from etl_assets.ledger.errors import JobNotFound
from etl_assets.recovery import Action, Verdict, apply
from etl_assets.resources.ledger import LedgerResource
from etl_assets.retries import Backoff

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_run_failure_sensor(
    job: "UnresolvedAssetJobDefinition", backoff: Backoff
) -> dg.SensorDefinition:
    """A run-failure sensor over `job` that requeues (or fails) the job its run still held."""

    @dg.run_failure_sensor(
        name="job_run_failure_sensor",
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requeues or fails a job whose run failed without recording it.",
    )
    def job_run_failure_sensor(context: dg.RunFailureSensorContext, ledger: LedgerResource) -> None:
        """A failed step records its own failure; this catches failures outside any step."""
        run = context.dagster_run
        job_id = run.tags.get("dagster/partition")
        if not job_id or run.tags.get("dagster/will_retry") == "true":
            return
        try:
            current = ledger.ledger.get(job_id)
        except JobNotFound:
            return
        attempt = run.tags.get("etl/attempt")
        held_by_run = current.run_id == run.run_id or (
            current.run_id is None and attempt == str(current.attempts)
        )
        if current.status is not JobStatus.PROCESSING or not held_by_run:
            return  # the run's steps already recorded the outcome, or another run holds it
        reason = f"run {run.run_id} failed: {context.failure_event.message or 'no message'}"
        verdict = Verdict(Action.REQUEUE, ErrorType.TRANSIENT, reason)
        after = apply(ledger.ledger, context.instance, current, verdict, backoff)
        if after is not None:
            context.log.info(f"job={job_id} is {after.status.value} after its run failed")

    return job_run_failure_sensor
