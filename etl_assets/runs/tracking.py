"""Keeps the ledger true while a run works on a job: ownership, heartbeats, failures, retries.

Every asset step and the warehouse IO manager run their work inside `job_step`. It attaches
the run to the job (or refuses to touch a job it does not hold), keeps the job's heartbeat
fresh from a background thread, and turns any exception into a ledger record and a Dagster
outcome:

- transient, attempts left, short wait: the attempt is recorded as failed and the step is
  retried by Dagster in the same run after an exponential, jittered delay (`RetryRequested`);
- transient, attempts left, a wait longer than `max_in_run_wait_seconds` (a long backoff or
  Retry-After): the job goes back to pending, due later, and the run ends, so it holds no
  run slot while it waits; the dispatcher starts the next attempt in a new run;
- permanent, a bug, or no attempts left: the job fails (`permanent`, `bug` or
  `transient_exhausted`, the dead-letter state) and the step raises
  `Failure(allow_retries=False)`.

A job is never left in `processing` by a step that failed while the database could be reached.
When the database itself is what failed (an outage the in-run retry then outlives), the
failure cannot be written when it happens: it is remembered in the run's process and written
(the failed attempt, `retry_count` + 1) at the start of the step's next attempt, once the
database answers again, so the ledger keeps a trace of the outage. The asset and batch jobs
use the in-process executor, so a step's retry runs in the process that remembered.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from etl_assets.background import BackgroundLoop
from etl_assets.db import utcnow
from etl_assets.errors import ClassifiedError, classify
from etl_assets.ledger import ErrorType, Job, Ledger
from etl_assets.ledger.errors import IllegalTransition, JobNotFound, JobNotOwned
from etl_assets.logs import job_logging
from etl_assets.runs.retries import Backoff

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepPolicy:
    """How a job step keeps its heartbeat and handles a failure."""

    backoff: Backoff = field(default_factory=Backoff)
    heartbeat_seconds: float = 30.0
    max_in_run_wait_seconds: float = 300.0


@dataclass(frozen=True)
class JobStep:
    """What a step's body gets: the job as the ledger had it, and its heartbeat."""

    job: Job
    heartbeat: Heartbeat


def worker_identity() -> str:
    """Who runs this attempt, for the ledger: the Celery worker's name (`etl worker`) when a
    warm run worker executes the run, else host:pid of the run process."""
    try:
        from celery import current_task

        hostname = current_task.request.hostname if current_task else None
    except ImportError:  # pragma: no cover - dagster-celery is a dependency
        hostname = None
    return hostname or f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def job_step(
    ledger: Ledger,
    job_id: str,
    run_id: str,
    step: str,
    policy: StepPolicy,
    log: logging.Logger | None = None,
) -> Iterator[JobStep]:
    """Run one step of `run_id` on `job_id`, keeping the ledger true (see the module doc)."""
    # job_logging: every platform log line of the step names the job
    with (
        job_logging(job_id),
        _job_step(ledger, job_id, run_id, step, policy, log or logger) as body,
    ):
        yield body


@contextmanager
def _job_step(
    ledger: Ledger,
    job_id: str,
    run_id: str,
    step: str,
    policy: StepPolicy,
    log: logging.Logger,
) -> Iterator[JobStep]:
    try:
        job = ledger.begin_run(job_id, run_id, worker=worker_identity())
    except (IllegalTransition, JobNotFound) as exc:
        raise dg.Failure(
            description=f"step {step} refused: {exc}",
            metadata={"job_id": job_id},
            allow_retries=False,
        ) from exc
    job = _record_late_failure(ledger, job, log)
    heartbeat = Heartbeat(ledger, job_id, run_id, policy.heartbeat_seconds, log).start()
    try:
        yield JobStep(job, heartbeat)
        heartbeat.check()
    except JobNotOwned as exc:
        # Cancelled or taken over while running: the ledger already says so; write nothing.
        log.warning("job=%s step %s stopped: %s", job_id, step, exc)
        raise dg.Failure(
            description=str(exc), metadata={"job_id": job_id}, allow_retries=False
        ) from exc
    except Exception as exc:
        raise _after_failure(ledger, job, run_id, step, policy, classify(exc), log) from exc
    finally:
        heartbeat.stop()


def _after_failure(
    ledger: Ledger,
    job: Job,
    run_id: str,
    step: str,
    policy: StepPolicy,
    error: ClassifiedError,
    log: logging.Logger,
) -> Exception:
    """Record the failure and choose what Dagster does next (retry now, or fail the step)."""
    where = f"attempt {job.attempts}/{job.max_attempts} failed in {step}: {error.message}"
    metadata = {"job_id": job.job_id, "error_type": error.error_type.value}
    if error.retryable and job.attempts < job.max_attempts:
        delay = policy.backoff.delay(job.retry_count + 1, retry_after=error.retry_after_seconds)
        retry_at = utcnow() + dt.timedelta(seconds=delay)
        message = f"{where}; retrying in {delay:.1f} s"
        log.warning("job=%s %s", job.job_id, message)
        if delay <= policy.max_in_run_wait_seconds:
            return _retry_in_run(ledger, job, run_id, error, message, retry_at, delay, log)
        return _requeue(ledger, job, run_id, error, message, retry_at, log)
    final = ErrorType.TRANSIENT_EXHAUSTED if error.retryable else error.error_type
    message = f"{where}; no attempts left" if error.retryable else where
    log.error("job=%s %s", job.job_id, message)
    try:
        ledger.fail(
            job.job_id,
            error_type=final,
            message=message,
            traceback=error.traceback,
            run_id=run_id,
        )
    except Exception as ledger_exc:  # noqa: BLE001 - the database itself may be what failed
        _log_unrecorded(log, job, ledger_exc)
    return dg.Failure(
        description=message, metadata=metadata | {"final": final.value}, allow_retries=False
    )


def _retry_in_run(
    ledger: Ledger,
    job: Job,
    run_id: str,
    error: ClassifiedError,
    message: str,
    retry_at: dt.datetime,
    delay: float,
    log: logging.Logger,
) -> Exception:
    try:
        planned = ledger.retry_in_run(
            job.job_id,
            run_id,
            error_type=error.error_type,
            message=message,
            traceback=error.traceback,
            retry_at=retry_at,
        ).next_attempt_at
        if planned is not None:  # another step's retry may already be planned: wait for it
            delay = max((planned - utcnow()).total_seconds(), 0.0)
    except IllegalTransition as moved:
        return dg.Failure(description=f"{message}; not retried: {moved}", allow_retries=False)
    except Exception as ledger_exc:  # noqa: BLE001 - e.g. the database is down right now
        # Retry anyway: the next attempt finds the job still held by this run, resumes, and
        # first writes this failure (see _record_late_failure).
        _log_unrecorded(log, job, ledger_exc)
        _remember_unrecorded(_UnrecordedFailure(job.job_id, run_id, error, message))
    # The ledger's attempt budget decides; Dagster's own count is only an upper bound.
    return dg.RetryRequested(max_retries=job.max_attempts, seconds_to_wait=delay)


def _requeue(
    ledger: Ledger,
    job: Job,
    run_id: str,
    error: ClassifiedError,
    message: str,
    retry_at: dt.datetime,
    log: logging.Logger,
) -> Exception:
    note = f"{message}; back in the queue until then"
    try:
        ledger.requeue_or_fail(
            job.job_id,
            run_id=run_id,
            attempt=job.attempts,
            error_type=error.error_type,
            message=note,
            retry_at=retry_at,
        )
    except Exception as ledger_exc:  # noqa: BLE001 - the reaper takes over
        _log_unrecorded(log, job, ledger_exc)
    return dg.Failure(description=note, metadata={"job_id": job.job_id}, allow_retries=False)


@dataclass(frozen=True)
class _UnrecordedFailure:
    """A failed attempt the ledger could not be told about when it happened."""

    job_id: str
    run_id: str
    error: ClassifiedError
    message: str


_unrecorded: dict[tuple[str, str], _UnrecordedFailure] = {}  # by (job id, run id)
_unrecorded_lock = threading.Lock()  # steps of a batch run share the process


def _remember_unrecorded(failure: _UnrecordedFailure) -> None:
    with _unrecorded_lock:
        _unrecorded.setdefault((failure.job_id, failure.run_id), failure)  # the first one


def _record_late_failure(ledger: Ledger, job: Job, log: logging.Logger) -> Job:
    """Write the failure this run could not record earlier, if there is one: the attempt
    ends failed and the next is opened, as `retry_in_run` would have done then. Returns the
    job as it is now. Kept for the next attempt if the database refuses again."""
    key = (job.job_id, job.run_id or "")
    with _unrecorded_lock:
        failure = _unrecorded.get(key)
    if failure is None:
        return job
    message = f"{failure.message} (recorded late: the database was unreachable then)"
    try:
        job = ledger.retry_in_run(
            job.job_id,
            failure.run_id,
            error_type=failure.error.error_type,
            message=message,
            traceback=failure.error.traceback,
            retry_at=utcnow(),
        )
    except IllegalTransition as moved:  # no attempt left to move to, or the job moved on
        log.warning("job=%s earlier failure not recorded: %s", job.job_id, moved)
    except Exception as exc:  # noqa: BLE001 - still down: try again at the next attempt
        log.warning("job=%s earlier failure still not recorded: %s", job.job_id, exc)
        return job
    else:
        log.info("job=%s recorded the failure the database outage hid", job.job_id)
    with _unrecorded_lock:
        _unrecorded.pop(key, None)
    return job


def _log_unrecorded(log: logging.Logger, job: Job, exc: Exception) -> None:
    log.error(
        "job=%s could not record its failure (%s); if the run ends here, the reaper "
        "reclaims the job once its heartbeat is stale",
        job.job_id,
        exc,
    )


class Heartbeat(BackgroundLoop):
    """Refreshes the job's `last_heartbeat_at` every `interval` seconds from a daemon thread.

    One small UPDATE per interval, whatever the step is doing (parsing, waiting on an API,
    loading). When the job turns out to be no longer held by this run (cancelled, reclaimed),
    the next `check()` raises JobNotOwned so the step stops. An interval of 0 disables it.
    """

    def __init__(
        self,
        ledger: Ledger,
        job_id: str,
        run_id: str,
        interval: float,
        log: logging.Logger | None = None,
    ) -> None:
        super().__init__(f"heartbeat-{job_id}", join_seconds=30)  # stop waits for a beat
        self.ledger = ledger
        self.job_id = job_id
        self.run_id = run_id
        self.interval = interval
        self.beats = 0
        self._log = log or logger
        self._lost: JobNotOwned | None = None

    def _wanted(self) -> bool:
        return self.interval > 0

    def check(self) -> None:
        """Raise JobNotOwned if a beat found the job taken away from this run."""
        if self._lost is not None:
            raise self._lost

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.ledger.heartbeat(self.job_id, self.run_id)
                self.beats += 1
            except JobNotOwned as lost:
                self._lost = lost
                return
            except Exception as exc:  # noqa: BLE001 - a database blip: try again next beat
                self._log.warning("job=%s heartbeat failed: %s", self.job_id, exc)
