"""The reaper: takes back processing jobs whose run died, hung, ended or was cancelled, and
runs the event handlers a dead run left unrun."""

import datetime as dt

import dagster as dg

from etl_assets.db import utcnow
from etl_assets.events.store import retry_abandoned_events
from etl_assets.resources.ledger import LedgerResource
from etl_assets.runs.recovery import apply, diagnose, find_run
from etl_assets.runs.retries import Backoff


def build_reaper_sensor(
    stuck_after_seconds: float, interval_seconds: int, backoff: Backoff
) -> dg.SensorDefinition:
    """The reaper, treating a heartbeat older than `stuck_after_seconds` as stuck."""

    @dg.sensor(
        name="reaper_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Reclaims processing jobs whose heartbeat is older than {stuck_after_seconds:.0f} s "
            "or whose Dagster run has ended without updating the ledger, and runs the handlers "
            "of events a dead run left pending."
        ),
    )
    def reaper_sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource) -> dg.SkipReason:
        """Compare every processing job with its Dagster run and reclaim the dead ones."""
        stale_before = utcnow() - dt.timedelta(seconds=stuck_after_seconds)
        reclaimed = 0
        for job in ledger.ledger.processing_jobs():
            verdict = diagnose(job, find_run(context.instance, job), stale_before)
            if verdict is None:
                continue
            after = apply(ledger.ledger, context.instance, job, verdict, backoff, stale_before)
            if after is not None:
                reclaimed += 1
                context.log.warning(
                    f"job={job.job_id} {verdict.action.value}: {verdict.reason}; "
                    f"now {after.status.value}"
                )
        # A run killed after its load committed, before or while its event's handlers ran,
        # left the event pending, and its job is completed: nothing else would run them.
        # A few per tick: a handler may wait for its timeout (the webhook's, 10 s by
        # default), and the tick must end within the sensor's 60 s.
        handled = retry_abandoned_events(ledger.ledger.engine, stale_before, limit=5)
        if handled:
            context.log.warning(f"ran the handlers of events left pending: {handled}")
        return dg.SkipReason(
            f"reclaimed {reclaimed} job(s), {len(handled)} pending event(s)"
            if reclaimed or handled
            else "no stuck jobs"
        )

    return reaper_sensor
