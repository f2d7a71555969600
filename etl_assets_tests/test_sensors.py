"""Sensors on a real instance: the inbox publisher and the run-failure watcher.

(The dispatch sensor is exercised in test_pipeline.py, through every run it requests.)
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from etl_assets.config import Settings
from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.db import engine_for
from etl_assets.definitions import build_definitions
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger
from etl_assets.ledger.schema import jobs
from etl_assets.resources.ledger import LedgerResource
from etl_assets.runtime.local_daemon import LocalDaemon

SECOND_INBOX_SETTLE = 3600.0


@pytest.fixture
def ledger_for(settings: Settings) -> Ledger:
    return Ledger(engine_for(settings))


def test_inbox_sensor_registers_files_and_their_partitions(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    inbox = Path(settings.inbox_dir) / "sales"
    frame = sales_frame(9)
    write_sales_csv(inbox / "a.csv", frame)
    write_sales_csv(inbox / "a_again.csv", frame)
    daemon = LocalDaemon(build_definitions(settings), instance)

    # The tick that registers the file claims its job and requests its run, as a dispatch
    # tick would, so a dropped file waits for one tick, not two.
    [request] = daemon.tick("inbox_sensor")

    [job] = ledger_for.list_jobs()
    assert (job.source_name, job.status, job.attempts) == ("a.csv", JobStatus.PROCESSING, 1)
    assert (request.partition_key, request.run_key) == (job.job_id, f"{job.job_id}:1")
    assert instance.get_dynamic_partitions("sales_jobs") == [job.job_id]
    assert list(inbox.iterdir()) == []
    assert daemon.tick("dispatch_sensor") == []  # claimed once: the ledger's compare-and-set
    assert daemon.tick("inbox_sensor") == []
    assert len(ledger_for.list_jobs()) == 1
    [result] = [daemon.execute(request)]
    assert result.success and ledger_for.get(job.job_id).status is JobStatus.COMPLETED


def test_inbox_sensor_leaves_duplicates_and_other_due_jobs_to_the_dispatcher(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    inbox = Path(settings.inbox_dir) / "sales"
    daemon = LocalDaemon(build_definitions(settings), instance)
    write_sales_csv(inbox / "a.csv", sales_frame(9))
    [first] = daemon.tick("inbox_sensor")
    waiting = claimed_job(ledger_for, "retry-later.csv")  # claimed and given back below
    ledger_for.requeue_or_fail(
        waiting.job_id,
        run_id=None,
        attempt=1,
        error_type=ErrorType.TRANSIENT,
        message="x",
        retry_at=waiting.created_at,
    )
    write_sales_csv(inbox / "a_again.csv", sales_frame(9))  # the same content: no new job
    assert daemon.tick("inbox_sensor") == []
    assert ledger_for.get(waiting.job_id).status is JobStatus.PENDING
    [request] = daemon.tick("dispatch_sensor")
    assert request.partition_key == waiting.job_id and first.partition_key != waiting.job_id


def test_inbox_sensor_leaves_unsettled_files(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    patient = Settings(**{**settings.__dict__, "inbox_settle_seconds": SECOND_INBOX_SETTLE})
    path = write_sales_csv(Path(settings.inbox_dir) / "sales" / "fresh.csv", sales_frame(3))
    LocalDaemon(build_definitions(patient), instance).tick("inbox_sensor")
    assert ledger_for.list_jobs() == []
    assert path.exists()


def claimed_job(ledger: Ledger, name: str) -> Job:
    """A job the dispatcher has claimed (processing, no run attached yet)."""
    job, _ = ledger.create_job(
        dataset="sales",
        source_uri=f"/{name}",
        source_name=name,
        content_sha256=name.ljust(64, "0"),
        size_bytes=1,
    )
    [claimed] = ledger.claim_due(1)
    assert claimed.job_id == job.job_id
    return claimed


def failed_run(instance: dg.DagsterInstance, settings: Settings, tags: dict[str, str]) -> tuple:
    defs = build_definitions(settings)
    run = instance.create_run_for_job(defs.resolve_job_def("sales_job"), tags=tags)
    event = instance.report_run_failed(run, message="resource 'ledger' failed to initialize")
    return defs, instance.get_run_by_id(run.run_id), event


def evaluate_failure_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, run: dg.DagsterRun, event: dg.DagsterEvent
) -> None:
    sensor = defs.get_unresolved_sensor_def("job_run_failure_sensor")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"ledger": defs.resources["ledger"]},  # type: ignore[index]
    ).for_run_failure()
    sensor(context)  # type: ignore[call-arg]


def test_failure_sensor_requeues_a_job_its_run_never_reached(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    job = claimed_job(ledger_for, "x.csv")
    defs, run, event = failed_run(
        instance,
        settings,
        {"dagster/partition": job.job_id, "etl/attempt": str(job.attempts)},
    )

    evaluate_failure_sensor(defs, instance, run, event)

    # The attempt was lost without an error of its own: a timeout, as the reaper says.
    requeued = ledger_for.get(job.job_id)
    assert (requeued.status, requeued.error_type, requeued.retry_count) == (
        JobStatus.PENDING,
        ErrorType.TIMEOUT,
        1,
    )
    assert requeued.next_attempt_at is not None
    assert (requeued.error_message or "").endswith(
        f"run {run.run_id} ended (FAILURE) without recording the job's outcome "
        "(resource 'ledger' failed to initialize)"
    )
    assert ledger_for.attempts(job.job_id)[0]["outcome"] == "timed_out"


def test_the_failure_sensor_and_the_reaper_agree_on_a_killed_run(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    """A run killed with `kill -9`, which run monitoring then marks failed, leaves the same
    record whichever of the two takes its job back first."""
    from etl_assets.runtime.local_daemon import LocalDaemon

    outcomes = []
    claimed = [(claimed_job(ledger_for, "s.csv"), "sensor"), (claimed_job(ledger_for, "r.csv"), "")]
    for job, taken_back_by in claimed:
        defs = build_definitions(settings)
        run = instance.create_run_for_job(
            defs.resolve_job_def("sales_job"),
            tags={"dagster/partition": job.job_id, "etl/attempt": str(job.attempts)},
            status=dg.DagsterRunStatus.STARTED,
        )
        ledger_for.begin_run(job.job_id, run.run_id)
        event = instance.report_run_failed(run, message="run worker process died")
        if taken_back_by == "sensor":
            evaluate_failure_sensor(defs, instance, instance.get_run_by_id(run.run_id), event)
        else:
            LocalDaemon(defs, instance).tick("reaper_sensor")
        after = ledger_for.get(job.job_id)
        [attempt] = ledger_for.attempts(job.job_id)
        outcomes.append((after.status, after.error_type, attempt["outcome"]))
    assert outcomes[0] == outcomes[1] == (JobStatus.PENDING, ErrorType.TIMEOUT, "timed_out")


def test_failure_sensor_dead_letters_a_job_without_attempts_left(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    job = claimed_job(ledger_for, "z.csv")
    with ledger_for.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.job_id == job.job_id).values(max_attempts=1))
    defs, run, event = failed_run(
        instance, settings, {"dagster/partition": job.job_id, "etl/attempt": "1"}
    )

    evaluate_failure_sensor(defs, instance, run, event)

    dead = ledger_for.get(job.job_id)
    assert (dead.status, dead.error_type) == (JobStatus.FAILED, ErrorType.TRANSIENT_EXHAUSTED)


def test_failure_sensor_leaves_jobs_the_run_does_not_hold(
    settings: Settings, instance: dg.DagsterInstance, ledger_for: Ledger
) -> None:
    job = claimed_job(ledger_for, "y.csv")
    ledger_for.begin_run(job.job_id, "the-live-run")
    defs, run, event = failed_run(
        instance, settings, {"dagster/partition": job.job_id, "etl/attempt": "1"}
    )

    evaluate_failure_sensor(defs, instance, run, event)

    assert ledger_for.get(job.job_id).status is JobStatus.PROCESSING


def test_ledger_resource_gives_one_engine_per_process(settings: Settings) -> None:
    first = LedgerResource(database_url=settings.database_url)
    second = LedgerResource(database_url=settings.database_url)
    assert first.engine is second.engine
