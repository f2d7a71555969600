"""Batch runs of small jobs: grouped by the dispatcher, each job exact in the ledger and
materialized for its own partition; a bad job never fails or holds up the others."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from conftest import Platform, platform_for

from etl_assets.assets.batch import BATCH_JOB, BATCH_TAG, JOB_TAG_PREFIX
from etl_assets.config import Settings
from etl_assets.ledger import ErrorType, Job, JobStatus
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.reference_api.server import Fault
from etl_assets.runs.recovery import find_run
from etl_assets.runtime.dispatching import (
    CODE_MODULE,
    LOCATION_NAME,
    STARTED_AT_SUBMIT_TAG,
    load_code_location,
    start_due_jobs,
    start_due_jobs_on,
)
from etl_assets.sensors.dispatch import plan_runs
from etl_assets.sensors.run_failure import jobs_of_run

ASSETS = ["sales/source_rows", "sales/fx_rates", "sales/catalog_products", "sales/sales_fact"]


def claimed(job_id: str, size: int, priority: int = 0) -> Job:
    """A claimed job as the dispatcher sees it (only the fields plan_runs reads matter)."""
    return Job(
        **{f.name: None for f in dataclasses.fields(Job)}
        | dict(job_id=job_id, size_bytes=size, priority=priority, attempts=1, dataset="sales")
    )


def test_small_jobs_are_batched_and_the_rest_run_alone() -> None:
    jobs = [claimed("a", 10), claimed("big", 5000), claimed("b", 10, priority=3), claimed("c", 9)]
    requests = plan_runs(jobs, jobs_per_run=2, small_job_bytes=100)
    batches = [r for r in requests if r.job_name == BATCH_JOB]
    alone = [r.partition_key for r in requests if r.job_name != BATCH_JOB]
    assert [r.run_config["ops"]["run_job_batch"]["config"]["job_ids"] for r in batches] == [
        ["a", "b"],
        ["c"],  # the last small job: a batch of one, the lighter run
    ]
    assert batches[0].tags[BATCH_TAG] == "2" and batches[0].tags["dagster/priority"] == "3"
    assert batches[0].tags[f"{JOB_TAG_PREFIX}a"] == "1"
    assert batches[1].tags[BATCH_TAG] == "1" and batches[1].tags[f"{JOB_TAG_PREFIX}c"] == "1"
    assert alone == ["big"]
    assert len({r.run_key for r in requests}) == len(requests)
    # The sensor targets two jobs: the daemon refuses a request that does not name its job.
    assert {r.job_name for r in requests} == {BATCH_JOB, "sales_job"}
    assert all(r.job_name != BATCH_JOB for r in plan_runs(jobs, 1, 100))


@pytest.fixture
def batched(settings: Settings, instance: dg.DagsterInstance, tmp_path: Path) -> Platform:
    """The platform with up to 5 small jobs per run."""
    return platform_for(dataclasses.replace(settings, jobs_per_run=5), instance, tmp_path)


def materialized(platform: Platform, asset: str) -> set[str]:
    instance = platform.daemon.instance
    return set(instance.get_materialized_partitions(dg.AssetKey.from_user_string(asset)))


def test_a_batch_loads_every_good_job_and_records_the_bad_ones(
    batched: Platform, api: ReferenceApiServer, tmp_path: Path
) -> None:
    good = [batched.submit(f"good{n}.csv", rows=40, seed=n) for n in range(3)]
    broken_path = tmp_path / "in" / "broken.csv"
    broken_path.write_text("order_id\nX\n")
    broken = batched.submit_file(broken_path)
    # The first catalog call fails once: the job that makes it goes back to the queue.
    api.faults.add(Fault("/catalog", status=503, count=1))

    [request] = batched.daemon.tick("dispatch_sensor")
    assert request.job_name == BATCH_JOB
    result = batched.daemon.execute(request)
    # The others ran and loaded; the run then fails, so the Runs page shows the failed jobs.
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert message.startswith("2 of the batch's 4 jobs failed (2 completed)")
    assert (
        f"job {broken.job_id} failed: " in message and f"job {good[0].job_id} failed: " in message
    )
    before = {job.job_id: job for job in batched.ledger.list_jobs()}
    failure_sensor_sees(batched, result.run_id)
    jobs = {job.job_id: job for job in batched.ledger.list_jobs()}
    assert jobs == before  # the sensor finds every job recorded already: nothing requeued twice
    requeued = jobs[good[0].job_id]
    assert (requeued.status, requeued.error_type) == (JobStatus.PENDING, ErrorType.TRANSIENT)
    assert jobs[broken.job_id].status is JobStatus.FAILED
    assert jobs[broken.job_id].error_type is ErrorType.PERMANENT
    for job in good[1:]:
        assert (jobs[job.job_id].status, jobs[job.job_id].attempts) == (JobStatus.COMPLETED, 1)
        assert jobs[job.job_id].run_id == result.run_id
        assert batched.facts(job.job_id) == 40
    for asset in ASSETS:  # the UI shows each completed job's partition, and only those
        assert materialized(batched, asset) == {job.job_id for job in good[1:]}

    batched.run_all()  # the requeued job's backoff is short in tests: it completes now
    again = batched.ledger.get(good[0].job_id)
    assert (again.status, again.attempts) == (JobStatus.COMPLETED, 2)
    assert materialized(batched, "sales/sales_fact") == {job.job_id for job in good}


def failure_sensor_sees(platform: Platform, run_id: str) -> None:
    """Evaluate the run-failure sensor on the failed run, as the daemon would."""
    instance = platform.daemon.instance
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status is dg.DagsterRunStatus.FAILURE
    [entry] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    defs = platform.daemon.defs
    sensor = defs.get_unresolved_sensor_def("job_run_failure_sensor")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=entry.dagster_event,  # type: ignore[arg-type]
        dagster_instance=instance,
        dagster_run=run,
        resources={"ledger": defs.resources["ledger"]},  # type: ignore[index]
    ).for_run_failure()
    sensor(context)  # type: ignore[call-arg]


def test_a_batch_of_good_jobs_is_a_successful_run(batched: Platform) -> None:
    good = [batched.submit(f"ok{n}.csv", rows=20, seed=n) for n in range(2)]
    [request] = batched.daemon.tick("dispatch_sensor")
    assert request.job_name == BATCH_JOB
    assert batched.daemon.execute(request).success
    assert {batched.ledger.get(job.job_id).status for job in good} == {JobStatus.COMPLETED}


def test_the_failure_sensor_and_the_reaper_find_the_jobs_of_a_batch_run(
    batched: Platform, instance: dg.DagsterInstance
) -> None:
    jobs = [batched.submit(f"f{n}.csv", rows=10, seed=n) for n in range(2)]
    [request] = batched.daemon.tick("dispatch_sensor")
    run = instance.create_run_for_job(
        batched.daemon.defs.resolve_job_def(BATCH_JOB),
        run_config=request.run_config,
        tags=dict(request.tags),
    )
    assert set(jobs_of_run(run)) == {job.job_id for job in jobs}
    for job in jobs:  # the reaper finds the batch run of a job that has not started yet
        found = find_run(instance, batched.ledger.get(job.job_id))
        assert found is not None and found.run_id == run.run_id


# ------------------------------------------------------------- runs started at submission


@pytest.fixture(scope="module")
def location() -> Iterator[object]:
    """The code location loaded in this process, as the ops API loads it."""
    with dg.instance_for_test() as instance:
        yield load_code_location(instance)


def test_a_submission_starts_its_run_at_once_and_the_sensor_never_claims_it(
    batched: Platform, location: Any
) -> None:
    instance = batched.daemon.instance
    job = batched.submit("one.csv", rows=20)
    (run,) = start_due_jobs_on(instance, batched.ledger, batched.settings, location)
    assert run.status is dg.DagsterRunStatus.QUEUED  # in Dagster's run queue, for the daemon
    assert run.job_name == BATCH_JOB and run.tags[f"{JOB_TAG_PREFIX}{job.job_id}"] == "1"
    assert run.tags[STARTED_AT_SUBMIT_TAG] == "true"
    assert run.remote_job_origin is not None
    assert run.remote_job_origin.location_name == LOCATION_NAME
    assert run.job_code_origin is not None  # what a Celery run worker loads the job from
    assert run.run_config["ops"]["run_job_batch"]["config"]["job_ids"] == [job.job_id]
    assert job.job_id in instance.get_dynamic_partitions("sales_jobs")
    claimed = batched.ledger.get(job.job_id)
    assert claimed.status is JobStatus.PROCESSING and claimed.attempts == 1
    # The claim is the ledger's compare-and-set: neither the sensor nor another submission
    # gets the job again.
    assert batched.daemon.tick("dispatch_sensor") == []
    assert start_due_jobs_on(instance, batched.ledger, batched.settings, location) == []
    assert len(instance.get_runs()) == 1


def test_the_workspace_names_the_location_runs_are_created_for() -> None:
    workspace = yaml.safe_load((Path(__file__).parents[1] / "workspace.yaml").read_text())
    names = [entry["python_module"]["location_name"] for entry in workspace["load_from"]]
    modules = [entry["python_module"]["module_name"] for entry in workspace["load_from"]]
    assert names == [LOCATION_NAME] and modules == [CODE_MODULE]


def test_a_busy_run_queue_leaves_new_jobs_to_the_sensor(batched: Platform, location: Any) -> None:
    instance = batched.daemon.instance
    settings = dataclasses.replace(batched.settings, max_concurrent_jobs=1)
    first = batched.submit("first.csv", rows=20)
    assert len(start_due_jobs_on(instance, batched.ledger, settings, location)) == 1
    second = batched.submit("second.csv", rows=20, seed=1)
    assert start_due_jobs_on(instance, batched.ledger, settings, location) == []
    assert batched.ledger.get(second.job_id).status is JobStatus.PENDING
    (request,) = batched.daemon.tick("dispatch_sensor")  # the sensor batches what waits
    assert request.tags[f"{JOB_TAG_PREFIX}{second.job_id}"] == "1"
    assert f"{JOB_TAG_PREFIX}{first.job_id}" not in request.tags


def test_a_run_that_cannot_be_created_gives_its_jobs_back(batched: Platform) -> None:
    class Broken:
        def get_repositories(self) -> dict[str, object]:
            raise RuntimeError("code location unreachable")

    job = batched.submit("one.csv", rows=20)
    instance = batched.daemon.instance
    runs = start_due_jobs_on(instance, batched.ledger, batched.settings, Broken())  # type: ignore[arg-type]
    assert runs == []
    back = batched.ledger.get(job.job_id)
    assert back.status is JobStatus.PENDING and back.error_type is ErrorType.TRANSIENT
    assert "code location unreachable" in (back.error_message or "")
    (request,) = batched.daemon.tick("dispatch_sensor")  # due at once, on its next attempt
    assert request.tags[f"{JOB_TAG_PREFIX}{job.job_id}"] == "2"


def test_without_a_dagster_instance_jobs_wait_for_the_sensor(batched: Platform) -> None:
    job = batched.submit("one.csv", rows=20)
    settings = dataclasses.replace(batched.settings, dagster_home="")
    assert start_due_jobs(batched.ledger, settings) == []
    assert batched.ledger.get(job.job_id).status is JobStatus.PENDING
