"""The reaper and crash recovery: dead, hung, ended and cancelled runs never strand a job."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import Platform

from etl_assets.assets.batch import BATCH_JOB
from etl_assets.config import Settings
from etl_assets.db import create_engine, utcnow
from etl_assets.definitions import build_definitions
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger
from etl_assets.ledger.schema import jobs
from etl_assets.runs.recovery import Action, diagnose

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
STALE_BEFORE = NOW - dt.timedelta(minutes=5)


def job_at(heartbeat_minutes_ago: float, *, retry_in_minutes: float | None = None) -> Job:
    """A processing job with the given heartbeat age (and a scheduled in-run retry)."""
    beat = NOW - dt.timedelta(minutes=heartbeat_minutes_ago)
    retry = None if retry_in_minutes is None else NOW + dt.timedelta(minutes=retry_in_minutes)
    return Job(
        job_id="J1", title="t", dataset="sales", source_uri="/x", source_name="x",
        content_sha256="0" * 64, size_bytes=1, status=JobStatus.PROCESSING, priority=0,
        attempts=1, retry_count=0, max_attempts=3, run_id="r1", error_type=None,
        error_message=None, error_traceback=None, created_at=beat, updated_at=beat,
        started_at=beat, last_heartbeat_at=beat, completed_at=None, next_attempt_at=retry,
        rows_total=None, rows_processed=0, rows_loaded=0, rows_quarantined=0, rows_duplicate=0,
        checkpoint=None, metrics=None,
    )  # fmt: skip


S = dg.DagsterRunStatus


@dataclass(frozen=True)
class RunStub:
    """What the decision reads of a DagsterRun (a real queued run needs a code origin)."""

    status: dg.DagsterRunStatus
    run_id: str = "r1"

    @property
    def is_finished(self) -> bool:
        return self.status in (S.SUCCESS, S.FAILURE, S.CANCELED)


def run_in(status: dg.DagsterRunStatus) -> dg.DagsterRun:
    return RunStub(status)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("heartbeat_age", "run_status", "expected"),
    [
        (1, None, None),  # just claimed, its run not created yet
        (10, None, Action.REQUEUE),  # the claim never became a run
        (1, S.QUEUED, None),  # waiting for a run slot
        (60, S.QUEUED, None),  # however long it waits
        (10, S.STARTING, None),
        (1, S.STARTED, None),  # alive
        (10, S.STARTED, Action.REQUEUE_AND_TERMINATE),  # hung
        (1, S.FAILURE, Action.REQUEUE),  # died, e.g. kill -9 seen by run monitoring
        (1, S.SUCCESS, Action.REQUEUE),  # a partial run that did not load the job
        (1, S.CANCELED, Action.CANCEL),  # cancelled from the UI or `etl cancel`
    ],
)
def test_the_reaper_decision_table(
    heartbeat_age: float, run_status: dg.DagsterRunStatus | None, expected: Action | None
) -> None:
    run = run_in(run_status) if run_status else None
    verdict = diagnose(job_at(heartbeat_age), run, STALE_BEFORE)
    assert (verdict.action if verdict else None) is expected


@pytest.mark.parametrize("run_status", [S.FAILURE, S.SUCCESS])
def test_a_run_that_ended_without_the_jobs_outcome_is_a_timeout(
    run_status: dg.DagsterRunStatus,
) -> None:
    """The kill path agrees with docs/troubleshooting.md: a lost attempt is a timeout; and it
    is applied at once, however fresh the heartbeat the dead run left."""
    verdict = diagnose(job_at(0.1), run_in(run_status), STALE_BEFORE)
    assert verdict is not None
    assert (verdict.action, verdict.error_type, verdict.only_if_stale) == (
        Action.REQUEUE,
        ErrorType.TIMEOUT,
        False,
    )
    assert "without recording the job's outcome" in verdict.reason


def test_a_job_waiting_for_its_retry_is_not_stuck() -> None:
    waiting = job_at(10, retry_in_minutes=2)  # old heartbeat, but a retry is scheduled
    assert diagnose(waiting, run_in(S.STARTED), STALE_BEFORE) is None


# ------------------------------------------------------------------------------ the sensor


def make_stale(ledger: Ledger, job_id: str, minutes: float = 10) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(last_heartbeat_at=utcnow() - dt.timedelta(minutes=minutes))
        )


def reap(platform: Platform) -> None:
    platform.daemon.tick("reaper_sensor")


def test_reaper_requeues_a_claim_that_never_ran(platform: Platform) -> None:
    job = platform.submit("lost.csv")
    [_request] = platform.daemon.tick("dispatch_sensor")  # claimed; the run never launched
    reap(platform)
    assert platform.ledger.get(job.job_id).status is JobStatus.PROCESSING  # not stale yet

    make_stale(platform.ledger, job.job_id)
    reap(platform)

    requeued = platform.ledger.get(job.job_id)
    assert (requeued.status, requeued.error_type, requeued.retry_count) == (
        JobStatus.PENDING,
        ErrorType.TIMEOUT,
        1,
    )
    assert "no run started for this attempt" in (requeued.error_message or "")
    assert platform.ledger.attempts(job.job_id)[0]["outcome"] == "timed_out"
    platform.run_all()  # the next attempt runs once due (the test backoff is 10 ms)
    assert platform.ledger.get(job.job_id).status is JobStatus.COMPLETED


def test_reaper_dead_letters_when_no_attempt_is_left(platform: Platform) -> None:
    job = platform.submit("lost.csv")
    with platform.ledger.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.job_id == job.job_id).values(max_attempts=1))
    platform.daemon.tick("dispatch_sensor")
    make_stale(platform.ledger, job.job_id)
    reap(platform)
    dead = platform.ledger.get(job.job_id)
    assert (dead.status, dead.error_type) == (JobStatus.FAILED, ErrorType.TRANSIENT_EXHAUSTED)


def test_reaper_cancels_a_job_whose_run_was_cancelled(
    platform: Platform, instance: dg.DagsterInstance
) -> None:
    job = platform.submit("stop.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    run = instance.create_run_for_job(
        platform.daemon.defs.resolve_job_def("sales_job"), tags=dict(request.tags)
    )
    platform.ledger.begin_run(job.job_id, run.run_id)
    instance.report_run_canceled(run)
    reap(platform)
    assert platform.ledger.get(job.job_id).status is JobStatus.CANCELLED


def test_reaper_requeues_a_job_whose_run_died_as_a_timeout(
    platform: Platform, instance: dg.DagsterInstance
) -> None:
    """Run monitoring marks a killed run failed; the job's heartbeat is still fresh. The
    reaper takes it back at once, as troubleshooting.md says: timeout, attempt timed_out."""
    job = platform.submit("died.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    run = instance.create_run_for_job(
        platform.daemon.defs.resolve_job_def("sales_job"), tags=dict(request.tags)
    )
    platform.ledger.begin_run(job.job_id, run.run_id)
    instance.report_run_failed(run, message="run worker process died")
    reap(platform)
    requeued = platform.ledger.get(job.job_id)
    assert (requeued.status, requeued.error_type, requeued.retry_count) == (
        JobStatus.PENDING,
        ErrorType.TIMEOUT,
        1,
    )
    assert "without recording the job's outcome" in (requeued.error_message or "")
    assert platform.ledger.attempts(job.job_id)[0]["outcome"] == "timed_out"


def test_reaper_leaves_queued_and_live_runs_alone(
    platform: Platform, instance: dg.DagsterInstance
) -> None:
    queued, live = platform.submit("queued.csv"), platform.submit("live.csv", seed=1)
    requests = {r.partition_key: r for r in platform.daemon.tick("dispatch_sensor")}
    job_def = platform.daemon.defs.resolve_job_def("sales_job")
    # waiting to start (a QUEUED run cannot be created without a code origin)
    instance.create_run_for_job(
        job_def, tags=dict(requests[queued.job_id].tags), status=S.NOT_STARTED
    )
    started = instance.create_run_for_job(
        job_def, tags=dict(requests[live.job_id].tags), status=S.STARTED
    )
    platform.ledger.begin_run(live.job_id, started.run_id)
    make_stale(platform.ledger, queued.job_id)
    reap(platform)
    assert platform.ledger.get(queued.job_id).status is JobStatus.PROCESSING
    assert platform.ledger.get(live.job_id).status is JobStatus.PROCESSING

    make_stale(platform.ledger, live.job_id)  # the live run stopped beating: it hangs
    reap(platform)
    assert platform.ledger.get(live.job_id).status is JobStatus.PENDING
    assert instance.get_run_by_id(started.run_id).status in (S.CANCELING, S.CANCELED)


# ------------------------------------------------------------------------------ kill -9

RUN_ONE_REQUEST = """
import os, sys
import dagster as dg
from etl_assets.config import Settings
from etl_assets.definitions import build_definitions
job_id, attempt = sys.argv[1], sys.argv[2]
hang_after = int(os.environ.get("ETL_TEST_HANG_AFTER_CHUNKS", "0"))
if hang_after:  # the run hangs for real: SIGSTOP, between two chunks (no transaction open)
    import signal
    from etl_assets.runs import tracking
    from etl_assets.warehouse import load

    real_check, loaded = tracking.Heartbeat.check, []

    def check(self):
        real_check(self)
        if sys._getframe(1).f_code is load.load_job.__code__:  # the check after each chunk
            loaded.append(1)
            if len(loaded) == hang_after:
                os.kill(os.getpid(), signal.SIGSTOP)

    tracking.Heartbeat.check = check
defs = build_definitions(Settings.from_env())
with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def("sales_job").execute_in_process(
        partition_key=job_id, instance=instance,
        tags={"etl/job_id": job_id, "etl/attempt": attempt}, raise_on_error=False,
    )
"""


def test_kill_9_mid_load_is_recovered_and_rows_load_exactly_once(
    platform: Platform, settings: Settings, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    slow = Settings(**{**settings.__dict__, "chunk_rows": 400, "stuck_after_seconds": 1})
    platform.daemon.defs = build_definitions(slow)
    job = platform.submit("big.csv", rows=24_000)
    [request] = platform.daemon.tick("dispatch_sensor")

    env = os.environ | {
        "DAGSTER_HOME": instance.root_directory,
        "DATABASE_URL": slow.database_url,
        "DATA_DIR": slow.data_dir,
        "FX_API_URL": slow.fx_api_url,
        "CATALOG_API_URL": slow.catalog_api_url,
        "CHUNK_ROWS": "400",
    }
    script = tmp_path / "run_one.py"
    script.write_text(RUN_ONE_REQUEST)
    child = subprocess.Popen(
        [sys.executable, str(script), job.job_id, request.tags["etl/attempt"]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the load is under way
        checkpoint = platform.ledger.get(job.job_id).checkpoint or {}
        if checkpoint.get("chunks_done", 0) >= 3:
            break
        assert child.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = platform.ledger.get(job.job_id)
    assert killed_at.status is JobStatus.PROCESSING
    done_before = killed_at.checkpoint["chunks_done"]  # type: ignore[index]
    assert 3 <= done_before < 60

    time.sleep(1.2)  # STUCK_AFTER_SECONDS=1 here: the heartbeat goes stale
    platform.daemon.tick("reaper_sensor")
    assert platform.ledger.get(job.job_id).status is JobStatus.PENDING
    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert done.metrics is not None
    assert done.metrics["resumed_from_chunk"] >= done_before
    assert (done.rows_total, done.rows_loaded, done.rows_duplicate) == (24_000, 24_000, 0)
    assert platform.facts() == 24_000  # exactly once
    outcomes = [a["outcome"] for a in platform.ledger.attempts(job.job_id)]
    assert outcomes == ["timed_out", "succeeded"]


# ------------------------------------------------------------------------------ database outage


def test_the_database_going_away_mid_job_costs_at_most_an_attempt(
    postgres_url: str,
    tmp_path: Path,
    api: object,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL drops every connection in the middle of a load and comes back 0.5 s later."""
    from conftest import emptied
    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    from etl_assets.db import engine_for
    from etl_assets.runtime.local_daemon import LocalDaemon
    from etl_assets.warehouse import load as load_module

    target = make_url(emptied(postgres_url))
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=url,
        fx_api_url=api.fx_url,  # type: ignore[attr-defined]
        catalog_api_url=api.catalog_url,  # type: ignore[attr-defined]
        chunk_rows=400,
        heartbeat_seconds=0.2,
        backoff_base_seconds=1.0,  # longer than the outage: the retry finds the database back
        backoff_jitter=0.0,
        # The asset job's steps retry in the run; a batch run (where a lone small job goes by
        # default) ends at an unrecordable failure and leaves the job to the reaper, which
        # test_random_faults' connection cuts cover.
        jobs_per_run=1,
    ).resolved()
    engine = engine_for(settings)
    platform = Platform(
        settings, LocalDaemon(build_definitions(settings), instance), Ledger(engine), tmp_path
    )
    job = platform.submit("outage.csv", rows=4000)

    real_upsert = load_module.upsert_facts
    chunks: list[int] = []

    def upsert_during_outage(conn: sa.Connection, *args: object, **kwargs: object) -> object:
        chunks.append(1)
        if len(chunks) == 3:
            proxy.cut()
            restore = threading.Timer(0.5, proxy.restore)
            restore.start()
        return real_upsert(conn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(load_module, "upsert_facts", upsert_during_outage)
    try:
        [result] = platform.run_all()
    finally:
        proxy.close()
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)

    assert result.success
    ledger = Ledger(create_engine(postgres_url))  # straight to the server, not the proxy
    done = ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert (done.rows_loaded, done.rows_duplicate) == (4000, 0)
    # The outage began as the third chunk's rows were written: chunks 1 and 2 had committed,
    # or only chunk 1 if chunk 2 was still committing while chunk 3 was written ahead.
    assert done.metrics is not None and done.metrics["resumed_from_chunk"] in (1, 2)
    assert done.attempts <= 2  # at most the one attempt the outage interrupted
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sales_fact").scalar_one() == 4000
    assert engine.pool.checkedout() == 0  # no connection leaked through the outage
    ledger.engine.dispose()
    proxy.close()


# ------------------------------------------------------------------------------ dispatch at scale


def test_two_dispatchers_under_load_never_start_a_job_twice(
    postgres_url: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Two dispatch sensors (separate engines, as in two code servers) over 400 jobs."""
    from conftest import emptied

    from etl_assets.runtime.local_daemon import LocalDaemon

    url = emptied(postgres_url)
    settings = Settings(data_dir=str(tmp_path), database_url=url, batch_size=25).resolved()
    setup = Ledger(create_engine(url))
    for n in range(400):
        setup.create_job(
            dataset="sales",
            source_uri=f"/{n}",
            source_name=f"{n}.csv",
            content_sha256=f"{n:064d}",
            size_bytes=1,
        )
    requests: list[list[dg.RunRequest]] = [[], []]
    barrier = threading.Barrier(2)

    def dispatcher(index: int) -> None:
        daemon = LocalDaemon(build_definitions(settings), instance)
        barrier.wait()
        while batch := daemon.tick("dispatch_sensor"):
            requests[index].extend(batch)

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def job_ids(request: dg.RunRequest) -> list[str]:  # small jobs come in batch runs
        if request.job_name == BATCH_JOB:
            return request.run_config["ops"]["run_job_batch"]["config"]["job_ids"]
        return [str(request.partition_key)]

    keys = [job_id for batch in requests for r in batch for job_id in job_ids(r)]
    assert len(keys) == 400
    assert len(set(keys)) == 400  # no job in two run requests
    assert all(requests)  # both dispatchers took part
    assert setup.status_counts() == {"processing": 400}
    setup.engine.dispose()


def test_etl_cancel_terminates_the_running_run(
    platform: Platform, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from etl_assets.cli import main

    job = platform.submit("running.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    run = instance.create_run_for_job(
        platform.daemon.defs.resolve_job_def("sales_job"), tags=dict(request.tags), status=S.STARTED
    )
    platform.ledger.begin_run(job.job_id, run.run_id)
    monkeypatch.setenv("DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)

    result = CliRunner().invoke(main, ["cancel", job.job_id])

    assert result.exit_code == 0, result.output
    assert f"run {run.run_id}: termination requested" in result.output
    assert platform.ledger.get(job.job_id).status is JobStatus.CANCELLED
    assert instance.get_run_by_id(run.run_id).status in (S.CANCELING, S.CANCELED)


def started_batch_run(platform: Platform, instance: dg.DagsterInstance) -> tuple[list[Job], str]:
    """Two small jobs claimed into one batch run that has started (each job attached)."""
    batched = dataclasses.replace(platform.settings, jobs_per_run=5)
    platform.daemon.defs = build_definitions(batched)
    jobs_ = [platform.submit(f"b{n}.csv", rows=10, seed=n) for n in range(2)]
    [request] = platform.daemon.tick("dispatch_sensor")
    assert request.job_name == BATCH_JOB
    run = instance.create_run_for_job(
        platform.daemon.defs.resolve_job_def(BATCH_JOB),
        run_config=request.run_config,
        tags=dict(request.tags),
        status=S.STARTED,
    )
    for job in jobs_:
        platform.ledger.begin_run(job.job_id, run.run_id)
    return jobs_, run.run_id


def test_etl_cancel_leaves_a_batch_run_running_for_its_other_jobs(
    platform: Platform, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminating a batch run would stop every job in it: only the cancelled job leaves."""
    from click.testing import CliRunner

    from etl_assets.cli import main

    (cancelled, other), run_id = started_batch_run(platform, instance)
    monkeypatch.setenv("DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)

    result = CliRunner().invoke(main, ["cancel", cancelled.job_id])

    assert result.exit_code == 0, result.output
    assert f"run {run_id}: a batch run; the job leaves it at its next heartbeat" in result.output
    assert instance.get_run_by_id(run_id).status is S.STARTED  # not asked to terminate
    assert platform.ledger.get(cancelled.job_id).status is JobStatus.CANCELLED
    assert platform.ledger.get(other.job_id).status is JobStatus.PROCESSING


def test_the_reaper_takes_a_hung_job_out_of_a_batch_run_without_terminating_it(
    platform: Platform, instance: dg.DagsterInstance
) -> None:
    (hung, other), run_id = started_batch_run(platform, instance)
    make_stale(platform.ledger, hung.job_id)
    reap(platform)
    assert platform.ledger.get(hung.job_id).status is JobStatus.PENDING
    assert platform.ledger.get(other.job_id).status is JobStatus.PROCESSING
    assert instance.get_run_by_id(run_id).status is S.STARTED


# ------------------------------------------------------------------------------ a hung run


def start_run_process(
    platform: Platform, instance: dg.DagsterInstance, tmp_path: Path, **env: str
) -> tuple[Job, subprocess.Popen[bytes]]:
    """Claim a 4,000-row job (10 chunks) and start its run in a real process of its own."""
    job = platform.submit("big.csv", rows=4000)
    [request] = platform.daemon.tick("dispatch_sensor")
    script = tmp_path / "run_one.py"
    script.write_text(RUN_ONE_REQUEST)
    settings = platform.settings
    child_env = (
        os.environ
        | env
        | {
            "DAGSTER_HOME": instance.root_directory,
            "DATABASE_URL": settings.database_url,
            "DATA_DIR": settings.data_dir,
            "FX_API_URL": settings.fx_api_url,
            "CATALOG_API_URL": settings.catalog_api_url,
            "CHUNK_ROWS": "400",
        }
    )
    child = subprocess.Popen(
        [sys.executable, str(script), job.job_id, request.tags["etl/attempt"]],
        env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return job, child


def wait_until_stopped(child: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait (generously: the machine may be loaded) until the run process stopped itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, "the run ended instead of hanging"
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":  # stopped
                return
        time.sleep(0.1)
    raise AssertionError(f"the run process did not hang within {timeout} s")


def resume_and_finish(platform: Platform, child: subprocess.Popen[bytes]) -> None:
    """Let the hung process go on: it finds its job taken back and stops, writing nothing;
    then the job's next attempt loads every row exactly once."""
    os.kill(child.pid, signal.SIGCONT)
    assert child.wait(timeout=180) is not None
    platform.run_all()
    [job] = platform.ledger.list_jobs()
    assert job.status is JobStatus.COMPLETED
    assert (job.rows_total, job.rows_loaded, job.rows_duplicate) == (4000, 4000, 0)
    assert platform.facts() == 4000
    assert [a["outcome"] for a in platform.ledger.attempts(job.job_id)] == [
        "timed_out",
        "succeeded",
    ]


def kill_if_alive(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()  # SIGKILL ends a stopped process too
        child.wait()


# A real run process is slow to start (it imports Dagster): one database is enough here, and
# PostgreSQL is the one where a stopped process holding a lock would show.
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@ON_POSTGRES
def test_a_run_that_really_hangs_is_taken_back_by_its_heartbeat(
    platform: Platform, settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """The run process is SIGSTOPped mid-load (every thread, its heartbeat too): once the
    heartbeat is older than STUCK_AFTER_SECONDS the reaper requests the run's termination and
    requeues the job as a timeout."""
    reaper_settings = dataclasses.replace(settings, chunk_rows=400, stuck_after_seconds=2)
    platform.daemon.defs = build_definitions(reaper_settings)
    job, child = start_run_process(
        platform, instance, tmp_path, ETL_TEST_HANG_AFTER_CHUNKS="3", HEARTBEAT_SECONDS="0.2"
    )
    try:
        wait_until_stopped(child)
        hung = platform.ledger.get(job.job_id)
        assert (hung.status, hung.checkpoint["chunks_done"]) == (JobStatus.PROCESSING, 3)  # type: ignore[index]

        deadline = time.monotonic() + 120
        while platform.ledger.get(job.job_id).status is JobStatus.PROCESSING:
            assert time.monotonic() < deadline, "the reaper never took the hung job back"
            reap(platform)  # nothing while the heartbeat is younger than 2 s
            time.sleep(0.2)

        requeued = platform.ledger.get(job.job_id)
        assert (requeued.status, requeued.error_type) == (JobStatus.PENDING, ErrorType.TIMEOUT)
        assert "but the job's heartbeat stopped" in (requeued.error_message or "")
        assert instance.get_run_by_id(hung.run_id or "").status in (S.CANCELING, S.CANCELED)
        resume_and_finish(platform, child)
    finally:
        kill_if_alive(child)


@ON_POSTGRES
def test_a_run_that_really_hangs_is_stopped_by_job_timeout_minutes(
    settings: Settings, tmp_path: Path
) -> None:
    """JOB_TIMEOUT_MINUTES reaches Dagster's run monitoring through the dagster.yaml that
    `etl dagster-home` writes; a hung run past it is failed by Dagster, and the reaper then
    requeues its job as a timeout at once, although its heartbeat is not stale yet."""
    import logging

    import yaml
    from conftest import platform_for
    from dagster._daemon.monitoring.run_monitoring import check_run_timeout

    from etl_assets.runtime.instance import instance_config

    timed = dataclasses.replace(
        settings, chunk_rows=400, job_timeout_minutes=0.05, stuck_after_seconds=3600
    )
    template = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    monitoring = instance_config(template, timed)["run_monitoring"]
    assert monitoring["max_runtime_seconds"] == 3
    with dg.instance_for_test(overrides={"run_monitoring": monitoring}) as instance:
        platform = platform_for(timed, instance, tmp_path)
        job, child = start_run_process(platform, instance, tmp_path, ETL_TEST_HANG_AFTER_CHUNKS="3")
        try:
            wait_until_stopped(child)
            run_id = platform.ledger.get(job.job_id).run_id or ""
            # What the daemon's run monitoring does every poll_interval_seconds, in Dagster's
            # own code: past max_runtime_seconds it terminates the run and marks it failed.
            deadline = time.monotonic() + 120
            while not instance.get_run_by_id(run_id).is_finished:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "run monitoring never stopped the run"
                record = instance.get_run_record_by_id(run_id)
                check_run_timeout(
                    instance, record, logging.getLogger("test"),  # type: ignore[arg-type]
                    float(instance.run_monitoring_max_runtime_seconds),
                )  # fmt: skip
                time.sleep(0.2)
            assert instance.get_run_by_id(run_id).status is S.FAILURE  # type: ignore[union-attr]

            reap(platform)
            requeued = platform.ledger.get(job.job_id)
            assert (requeued.status, requeued.error_type) == (JobStatus.PENDING, ErrorType.TIMEOUT)
            assert f"run {run_id} ended (FAILURE)" in (requeued.error_message or "")
            resume_and_finish(platform, child)
        finally:
            kill_if_alive(child)
