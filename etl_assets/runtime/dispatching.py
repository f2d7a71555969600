"""Which runs claimed jobs get, and starting them at submission instead of at the next tick.

The dispatch sensor claims due pending jobs and requests their runs (`plan_runs`). Dagster's
sensor daemon evaluates sensors at most every 5 s, so a file submitted to an idle platform
waited 2.5 s on average (up to 5 s, plus the tick itself) before its run even existed. A
process that has just created a job (the ops API's `POST /v1/jobs`) can instead do what one
dispatch tick would do, at once (`start_due_jobs`): the same atomic claim of the ledger
(`Ledger.claim_due`, a compare-and-set: a job claimed here is never claimed by the sensor,
nor the other way round), the same run plan, and the runs created in Dagster's instance and
submitted to its run queue, the way Dagster's own GraphQL API launches a run. The run queue
still applies the concurrency limits, the daemon still launches the run on the configured
launcher, and the run, its tags and its materializations are those of a sensor's run.

It only does so while the run queue has a free slot: under a burst the jobs stay pending for
the dispatch sensor, which claims many per tick and runs the small ones in batches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from etl_assets.assets.batch import BATCH_JOB, BATCH_TAG, JOB_TAG_PREFIX
from etl_assets.config import Settings
from etl_assets.datasets import get_dataset
from etl_assets.db import utcnow
from etl_assets.ledger import ErrorType, Job, Ledger

if TYPE_CHECKING:
    from dagster._core.remote_representation.code_location import CodeLocation

logger = logging.getLogger(__name__)

# The code location as workspace.yaml names it: the daemon finds a run's code server by this
# name, so a run created here is launched like one the dispatch sensor requested.
LOCATION_NAME = "etl_assets"
CODE_MODULE = "etl_assets.definitions"
STARTED_AT_SUBMIT_TAG = "etl/started_at_submit"
PARTITION_TAG = "dagster/partition"
ACTIVE_RUNS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class RunPlan:
    """How a dispatcher claims and groups jobs: at most `batch_size` per tick, up to
    `jobs_per_run` small jobs (files of at most `small_job_bytes`) in one batch run."""

    batch_size: int
    jobs_per_run: int
    small_job_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RunPlan:
        """The plan of BATCH_SIZE, JOBS_PER_RUN and SMALL_JOB_BYTES."""
        return cls(settings.batch_size, settings.jobs_per_run, settings.small_job_bytes)


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
    """The runs for the claimed jobs (in claim order): small jobs in batch runs of up to
    `jobs_per_run`, every other job in its own asset-job run.

    A small job that comes alone (the usual case when files arrive one at a time) is a batch
    of one too: the batch job is one in-process op, where the asset job's run is four steps
    and about forty events of bookkeeping, which for a small file is most of its time to
    warehouse. The UI shows the same materialization of each asset for its partition.
    `jobs_per_run` 1 keeps every job in its own asset-job run."""
    small = [j for j in claimed if jobs_per_run > 1 and j.size_bytes <= small_job_bytes]
    alone = [j for j in claimed if j not in small]
    batches = [small[i : i + jobs_per_run] for i in range(0, len(small), jobs_per_run)]
    return [batch_run_request(b) for b in batches] + [run_request_for(j) for j in alone]


_lock = threading.Lock()  # one load of the code location; one run created at a time
_location: CodeLocation | None = None
_instances: dict[str, dg.DagsterInstance] = {}


def _instance_of(home: str) -> dg.DagsterInstance:
    """The Dagster instance of `home`, opened once per process: opening one on PostgreSQL
    storage (engines, a schema check) took about a second of each submission under load."""
    with _lock:
        if home not in _instances:
            _instances[home] = dg.DagsterInstance.from_config(home)
        return _instances[home]


def code_location(instance: dg.DagsterInstance) -> CodeLocation:
    """The code location, loaded into this process once (importing it costs a few seconds
    of CPU, so a long-lived process such as the ops API pays it on its first submission
    only)."""
    global _location
    with _lock:
        if _location is None:
            _location = load_code_location(instance)
        return _location


def load_code_location(instance: dg.DagsterInstance) -> CodeLocation:
    """The code location loaded in this process, under workspace.yaml's name for it."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, module_name=CODE_MODULE, working_directory=os.getcwd()
        ),
        location_name=LOCATION_NAME,
    )
    return origin.create_location(instance)


def start_due_jobs(ledger: Ledger, settings: Settings) -> list[dg.DagsterRun]:
    """Right after a submission: claim due jobs and submit their runs now, when a Dagster
    instance is configured (DAGSTER_HOME) and its run queue has a free slot; else leave them
    to the dispatch sensor. Returns the runs submitted. Never raises: the jobs stay in the
    ledger and the sensor dispatches whatever is not started here."""
    if not settings.dagster_home:
        return []
    try:
        instance = _instance_of(settings.dagster_home)
        return start_due_jobs_on(instance, ledger, settings, code_location(instance))
    except Exception:  # a submission must not fail because of this shortcut
        logger.warning("runs not started at submission; the dispatch sensor will", exc_info=True)
        return []


def start_due_jobs_on(
    instance: dg.DagsterInstance, ledger: Ledger, settings: Settings, location: CodeLocation
) -> list[dg.DagsterRun]:
    """What one dispatch tick does, on `instance` with runs of `location`, while the run
    queue has a free slot: claim up to one run's worth of due jobs (the ledger's atomic
    claim), add their partitions, create and submit their runs. A job whose run cannot be
    created is given back (pending, due now; the attempt counts as a failed one)."""
    if instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUNS)) >= max(
        1, settings.max_concurrent_jobs
    ):
        return []  # busy: the sensor's next tick batches what waits
    claimed = ledger.claim_due(max(1, settings.jobs_per_run))
    if not claimed:
        return []
    by_partitions: dict[str, list[str]] = {}
    for job in claimed:
        by_partitions.setdefault(get_dataset(job.dataset).partitions_name, []).append(job.job_id)
    runs = []
    for request in plan_runs(claimed, settings.jobs_per_run, settings.small_job_bytes):
        jobs = [j for j in claimed if _requested(request, j)]
        try:
            for name, keys in by_partitions.items():
                instance.add_dynamic_partitions(name, keys)  # idempotent
            run = _create_run(instance, location, request)
            runs.append(instance.submit_run(run.run_id, workspace=None))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - give the jobs back, then go on
            _give_back(ledger, jobs, exc)
    return runs


def _requested(request: dg.RunRequest, job: Job) -> bool:
    """Whether `request` runs `job`."""
    return request.tags.get("etl/job_id") == job.job_id or f"{JOB_TAG_PREFIX}{job.job_id}" in (
        request.tags
    )


def _create_run(
    instance: dg.DagsterInstance, location: CodeLocation, request: dg.RunRequest
) -> dg.DagsterRun:
    """The run of `request`, created as the sensor daemon creates a sensor's run: the job's
    snapshot and execution plan from the code location, its remote origin (how the daemon
    finds the code server) and its code origin (how a Celery run worker loads the job)."""
    assert request.job_name is not None
    (repository,) = location.get_repositories().values()
    remote_job = repository.get_full_job(request.job_name)
    run_config: dict[str, Any] = dict(request.run_config or {})
    tags = {**(remote_job.run_tags or {}), **request.tags, STARTED_AT_SUBMIT_TAG: "true"}
    if request.partition_key is not None:
        tags[PARTITION_TAG] = request.partition_key
    with _lock:
        plan = location.get_execution_plan(
            remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
        )
        return instance.create_run(
            job_name=remote_job.name,
            run_id=None,
            run_config=run_config,
            resolved_op_selection=remote_job.resolved_op_selection,
            step_keys_to_execute=None,
            status=dg.DagsterRunStatus.NOT_STARTED,
            op_selection=None,
            root_run_id=None,
            parent_run_id=None,
            tags=tags,
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )


def _give_back(ledger: Ledger, jobs: Iterable[Job], exc: Exception) -> None:
    """Put claimed jobs whose run could not be created back to pending, due now."""
    message = f"run not created at submission: {type(exc).__name__}: {exc}"[:300]
    logger.warning("%s; jobs %s given back", message, ", ".join(j.job_id for j in jobs))
    for job in jobs:
        ledger.requeue_or_fail(
            job.job_id,
            run_id=None,
            attempt=job.attempts,
            error_type=ErrorType.TRANSIENT,
            message=message,
            retry_at=utcnow(),
        )
