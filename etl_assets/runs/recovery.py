"""Taking back jobs whose run died, hung, failed outside its steps, or was cancelled.

Open-source Dagster has no step heartbeat, and a run killed with `kill -9` reports nothing;
the ledger's own heartbeat is what tells a live job from a dead one. The reaper sensor and
the run-failure sensor both decide here, from the job and its Dagster run, what to do:

| the job's run | the job's heartbeat | verdict |
|---|---|---|
| ended (failure, success of a partial selection) | any | requeue as a timeout |
| cancelled (from the UI or `etl cancel`) | any | cancel the job |
| queued or starting | any | nothing: it waits for a run slot |
| started | stale | hung: terminate the run, requeue as a timeout |
| started | fresh | nothing |
| none found | stale | requeue as a timeout (the claim never became a run) |

"Requeue" moves the job back to pending, due after the backoff delay, or to failed
(`transient_exhausted`) when it has no attempts left.

A run that ended while the job was still `processing` died without recording the job's
outcome (`kill -9`, out of memory, a lost node, seen by Dagster's run monitoring): like a hung
run, the attempt was lost, not failed by an error of its own, so it is a `timeout` and the
attempt is `timed_out`. A step that fails records its own error (`transient`, `permanent`,
`bug`) before its run ends, so the job is no longer processing when the run is looked at.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import dagster as dg

from etl_assets.db import utcnow
from etl_assets.ledger import ErrorType, Job, Ledger
from etl_assets.ledger.errors import IllegalTransition
from etl_assets.runs.retries import Backoff
from etl_assets.runs.tags import BATCH_TAG, JOB_TAG_PREFIX

WAITING_STATUSES = frozenset(
    {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING}
)


class Action(enum.Enum):
    """What to do with a processing job."""

    REQUEUE = "requeue"
    REQUEUE_AND_TERMINATE = "terminate its run and requeue"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Verdict:
    """A decision about one job, with the reason that goes into its error message."""

    action: Action
    error_type: ErrorType
    reason: str
    # Decided from a stale heartbeat alone: applied only if the job has not beaten since.
    only_if_stale: bool = False


def find_run(instance: dg.DagsterInstance, job: Job) -> dg.DagsterRun | None:
    """The Dagster run of the job's current attempt, if one exists."""
    if job.run_id:
        return instance.get_run_by_id(job.run_id)
    for tags in (
        {"etl/job_id": job.job_id, "etl/attempt": str(job.attempts)},
        {f"{JOB_TAG_PREFIX}{job.job_id}": str(job.attempts)},  # a batch run (assets/batch.py)
    ):
        runs = instance.get_runs(dg.RunsFilter(tags=tags), limit=1)
        if runs:
            return runs[0]
    return None


def terminate_unless_batch(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Ask Dagster to terminate the run, unless it is a batch run: that would stop every
    other job of the batch too. A job leaving a batch run stops at its next heartbeat check
    (JobNotOwned), and the batch goes on. Returns whether termination was requested."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished or run.tags.get(BATCH_TAG):
        return False
    instance.run_coordinator.cancel_run(run_id)
    return True


def is_stale(job: Job, stale_before: dt.datetime) -> bool:
    """No sign of life since `stale_before`: no heartbeat, and no retry scheduled after it."""
    heartbeat = job.last_heartbeat_at or job.updated_at
    retry_due = job.next_attempt_at
    return heartbeat < stale_before and (retry_due is None or retry_due < stale_before)


def ended_run_verdict(run: dg.DagsterRun, detail: str | None = None) -> Verdict:
    """The verdict on a job still processing when its run ended: a lost attempt, like a hung
    one (see the module doc), so a timeout, applied whatever the heartbeat says. `detail` is
    what Dagster said about the end (a run-failure event's message), when known."""
    cause = detail or "its process died or was killed"
    return Verdict(
        Action.REQUEUE,
        ErrorType.TIMEOUT,
        f"run {run.run_id} ended ({run.status.value}) without recording the job's outcome "
        f"({cause})",
    )


def diagnose(job: Job, run: dg.DagsterRun | None, stale_before: dt.datetime) -> Verdict | None:
    """What to do with a processing job, given its run (see the module's table)."""
    stale = is_stale(job, stale_before)
    if run is None:
        if not stale:
            return None
        return Verdict(Action.REQUEUE, ErrorType.TIMEOUT, "no run started for this attempt", True)
    if run.status == dg.DagsterRunStatus.CANCELED:
        return Verdict(Action.CANCEL, ErrorType.TRANSIENT, f"run {run.run_id} was cancelled")
    if run.is_finished:
        return ended_run_verdict(run)
    if run.status in WAITING_STATUSES or not stale:
        return None
    return Verdict(
        Action.REQUEUE_AND_TERMINATE,
        ErrorType.TIMEOUT,
        f"run {run.run_id} is {run.status.value} but the job's heartbeat stopped "
        f"(last {job.last_heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)",
        True,
    )


def apply(
    ledger: Ledger,
    instance: dg.DagsterInstance | None,
    job: Job,
    verdict: Verdict,
    backoff: Backoff,
    stale_before: dt.datetime | None = None,
) -> Job | None:
    """Carry out a verdict; returns the job as it is now, or None if it moved on meanwhile.

    A verdict drawn from a stale heartbeat (`only_if_stale`) is only applied if the heartbeat
    is still older than `stale_before`: a job that beat in the meantime is alive and left
    alone. One drawn from the run's end is applied whatever the heartbeat says.
    """
    try:
        if verdict.action is Action.CANCEL:
            return ledger.cancel(job.job_id)
        if verdict.action is Action.REQUEUE_AND_TERMINATE and instance is not None and job.run_id:
            terminate_unless_batch(instance, job.run_id)
        delay = backoff.delay(job.retry_count + 1)
        return ledger.requeue_or_fail(
            job.job_id,
            run_id=job.run_id,
            attempt=job.attempts,
            error_type=verdict.error_type,
            message=f"attempt {job.attempts}/{job.max_attempts}: {verdict.reason}",
            retry_at=utcnow() + dt.timedelta(seconds=delay),
            stale_before=stale_before if verdict.only_if_stale else None,
        )
    except IllegalTransition:
        return None  # the job changed since it was read (it finished, or was retried)
