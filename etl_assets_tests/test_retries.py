"""Transient failures are retried with backoff, permanent ones are not; every attempt is kept.

Delays are checked as numbers (no sleeping); the end-to-end cases run with a 10 ms base delay,
since Dagster's step retries really wait.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import Platform, platform_for

from etl_assets.config import Settings
from etl_assets.datasets.samples import sales_frame
from etl_assets.db import utcnow
from etl_assets.definitions import build_definitions
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.reference_api import Fault, ReferenceApiServer
from etl_assets.runs.retries import Backoff
from etl_assets.runs.tracking import Heartbeat, StepPolicy, job_step

# ------------------------------------------------------------------------------ delays


def test_the_delay_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(base_seconds=30, multiplier=2, cap_seconds=300, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert Backoff(base_seconds=5, multiplier=3, cap_seconds=1e9, jitter=0).delay(3) == 45
    assert Backoff(base_seconds=1, multiplier=10, cap_seconds=60, jitter=0).delay(10_000) == 60


def test_jitter_spreads_delays_within_bounds() -> None:
    backoff = Backoff(base_seconds=100, multiplier=2, cap_seconds=10_000, jitter=0.25)
    rng = random.Random(7)
    delays = [backoff.delay(2, rng=rng) for _ in range(500)]
    assert all(150 <= d <= 250 for d in delays)
    assert max(delays) - min(delays) > 80  # they really spread, so jobs do not retry together
    assert all(backoff.delay(20, rng=rng) <= 10_000 for _ in range(100))  # never above the cap


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base_seconds=1, multiplier=2, cap_seconds=60, jitter=0)
    assert backoff.delay(1, retry_after=42) == 42
    assert backoff.delay(5, retry_after=3) == 16
    assert backoff.delay(1, retry_after=600) == 600  # the server knows best, even past the cap


def test_settings_shape_the_backoff() -> None:
    settings = Settings(backoff_base_seconds=2, backoff_multiplier=5, backoff_max_seconds=30)
    backoff = Backoff.from_settings(settings)
    assert (backoff.nominal(1), backoff.nominal(2), backoff.nominal(3)) == (2, 10, 30)


# ------------------------------------------------------------------------------ end to end


def first_date(name: str, rows: int = 60) -> str:
    """The earliest order date of the file Platform.submit(name) writes."""
    return str(sales_frame(rows, order_prefix=name.split(".")[0].upper())["order_date"].min())


def test_503_twice_then_200_completes_on_attempt_3(
    platform: Platform,
    api: ReferenceApiServer,
) -> None:
    # One date of the file fails twice; the others answer (and are cached) on attempt 1.
    api.faults.add(Fault(f"/fx/{first_date('flaky.csv')}", status=503, count=2))
    job = platform.submit("flaky.csv")

    [result] = platform.run_all()

    assert result.success
    done = platform.ledger.get(job.job_id)
    assert (done.status, done.attempts, done.retry_count) == (JobStatus.COMPLETED, 3, 2)
    assert done.error_type is None  # cleared once the job completed
    attempts = platform.ledger.attempts(job.job_id)
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a["error_type"] for a in attempts] == ["transient", "transient", None]
    assert attempts[0]["error_message"].startswith("attempt 1/3 failed in sales/fx_rates: HTTP 503")
    assert attempts[1]["error_message"].startswith("attempt 2/3 failed in sales/fx_rates: HTTP 503")
    assert {a["run_id"] for a in attempts} == {done.run_id}  # retried within the run
    for earlier, later in itertools.pairwise(attempts):  # one after the other
        assert earlier["ended_at"] <= later["started_at"] <= later["ended_at"]
    assert platform.facts(job.job_id) == done.rows_loaded == 60  # no retry duplicated rows
    retries = [
        e
        for e in platform.daemon.instance.all_logs(done.run_id or "")
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retries) == 2  # Dagster shows both retries in the run's event log


@pytest.fixture
def slow_platform_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's clock (`etl_assets.db.utcnow`, in every module that imported it) runs
    100 times slower than the wall clock from now on: a 1 s backoff is a 100 s window to the
    ledger, however loaded the machine, while Dagster still waits 1 s of real time."""
    import sys

    from etl_assets import db

    real = db.utcnow
    start = real()

    def slow() -> dt.datetime:
        return start + (real() - start) / 100

    for name, module in list(sys.modules.items()):
        if name.startswith("etl_assets") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", slow)


@pytest.mark.usefixtures("slow_platform_clock")
def test_two_steps_failing_in_one_outage_cost_one_attempt(
    settings: Settings, instance: dg.DagsterInstance, api: ReferenceApiServer, tmp_path: Path
) -> None:
    # Both API steps fail once; the second fails while the first's retry is planned (1 s of
    # the platform's clock, which runs slow here so the machine's load cannot widen the gap).
    platform = platform_for(
        dataclasses.replace(settings, backoff_base_seconds=1.0), instance, tmp_path
    )
    api.faults.add(Fault("/fx", status=503, count=1))
    api.faults.add(Fault("/catalog", status=503, count=1))
    job = platform.submit("outage.csv")

    [result] = platform.run_all()

    assert result.success
    done = platform.ledger.get(job.job_id)
    assert (done.status, done.attempts, done.retry_count) == (JobStatus.COMPLETED, 2, 1)
    assert [a["outcome"] for a in platform.ledger.attempts(job.job_id)] == [
        "failed",
        "succeeded",
    ]


def test_429_waits_at_least_retry_after(
    platform: Platform,
    api: ReferenceApiServer,
) -> None:
    api.faults.add(Fault("/catalog", status=429, count=1, retry_after=1))
    job = platform.submit("limited.csv")
    started = time.monotonic()

    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 2)
    [first, _] = platform.ledger.attempts(job.job_id)
    assert "HTTP 429" in first["error_message"]
    assert first["error_message"].endswith("retrying in 1.0 s")
    assert time.monotonic() - started >= 1.0


def test_a_404_fails_at_once_without_retry(
    platform: Platform,
    api: ReferenceApiServer,
) -> None:
    day = first_date("gone.csv")
    api.faults.add(Fault(f"/fx/{day}", status=404))
    job = platform.submit("gone.csv")
    platform.run_all()
    failed = platform.ledger.get(job.job_id)
    assert (failed.status, failed.error_type) == (JobStatus.FAILED, ErrorType.PERMANENT)
    assert (failed.attempts, failed.retry_count) == (1, 1)
    assert api.faults.calls_to(f"/fx/{day}") == 1


def test_a_dead_letter_job_succeeds_after_a_manual_retry(
    platform: Platform,
    api: ReferenceApiServer,
) -> None:
    api.faults.add(Fault("/catalog", status=502))
    job = platform.submit("dead.csv")
    platform.run_all()
    assert platform.ledger.get(job.job_id).error_type is ErrorType.TRANSIENT_EXHAUSTED

    api.faults.clear()  # the API is back
    retried = platform.ledger.retry(job.job_id, priority=10)
    assert (retried.status, retried.max_attempts, retried.priority) == (JobStatus.PENDING, 6, 10)
    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert (done.status, done.attempts, done.retry_count) == (JobStatus.COMPLETED, 4, 3)
    assert len(platform.ledger.attempts(job.job_id)) == 4  # the history is kept
    assert platform.facts(job.job_id) == 60


def test_re_executing_a_failed_jobs_run_from_the_dagster_ui_is_a_manual_retry(
    platform: Platform,
    api: ReferenceApiServer,
) -> None:
    """What docs/troubleshooting.md tells an operator: **Re-execute** (all steps) of a failed
    job's run starts a fresh attempt budget, like `etl retry`, and completes the job."""
    day = first_date("again.csv")
    api.faults.add(Fault(f"/fx/{day}", status=404))
    job = platform.submit("again.csv")
    [request] = platform.daemon.tick("dispatch_sensor")
    first = platform.daemon.execute(request)
    failed = platform.ledger.get(job.job_id)
    assert (failed.status, failed.error_type, failed.attempts) == (
        JobStatus.FAILED,
        ErrorType.PERMANENT,
        1,
    )

    api.faults.clear()  # the cause is fixed
    # The UI's re-execution: a new run of the same job and partition, with the parent's tags.
    lineage = {"dagster/parent_run_id": first.run_id, "dagster/root_run_id": first.run_id}
    again = platform.daemon.execute(
        dg.RunRequest(
            partition_key=request.partition_key,
            job_name=request.job_name,
            tags={**request.tags, **lineage},
        )
    )

    assert again.success
    done = platform.ledger.get(job.job_id)
    assert (done.status, done.run_id, done.attempts) == (JobStatus.COMPLETED, again.run_id, 2)
    assert done.max_attempts == 1 + 3  # a fresh budget, as `etl retry` gives
    outcomes = [(a["run_id"], a["outcome"]) for a in platform.ledger.attempts(job.job_id)]
    assert outcomes == [(first.run_id, "failed"), (again.run_id, "succeeded")]
    assert platform.facts(job.job_id) == 60


def test_a_long_wait_frees_the_run_and_requeues_the_job(
    platform: Platform,
    api: ReferenceApiServer,
    settings: Settings,
) -> None:
    patient = Settings(**{**settings.__dict__, "stuck_after_seconds": 60})
    platform.daemon.defs = build_definitions(patient)
    api.faults.add(Fault("/fx", status=429, count=1, retry_after=3600))
    job = platform.submit("later.csv")

    [result] = platform.run_all()

    assert not result.success  # the run ended instead of sleeping for an hour
    waiting = platform.ledger.get(job.job_id)
    assert (waiting.status, waiting.error_type, waiting.attempts) == (
        JobStatus.PENDING,
        ErrorType.TRANSIENT,
        1,
    )
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at > utcnow() + dt.timedelta(minutes=59)
    assert platform.daemon.tick("dispatch_sensor") == []  # not due yet

    [claimed] = platform.ledger.claim_due(1, now=waiting.next_attempt_at)
    assert claimed.run_key == f"{job.job_id}:2"


def test_manual_retry_goes_ahead_of_ordinary_jobs(ledger: Ledger) -> None:
    ordinary, _ = ledger.create_job(
        dataset="sales", source_uri="/a", source_name="a", content_sha256="a" * 64, size_bytes=1
    )
    again, _ = ledger.create_job(
        dataset="sales", source_uri="/b", source_name="b", content_sha256="b" * 64, size_bytes=1
    )
    ledger.begin_run(again.job_id, "run-1")
    ledger.fail(again.job_id, error_type=ErrorType.TRANSIENT, message="x", run_id="run-1")
    ledger.retry(again.job_id, priority=10)
    assert [j.job_id for j in ledger.claim_due(2)] == [again.job_id, ordinary.job_id]


# ------------------------------------------------------------------------------ heartbeats

# How long a test waits for a background thread on a loaded machine: a condition is polled,
# never a count taken after a fixed sleep.
DEADLINE_SECONDS = 60.0


def eventually(condition: Callable[[], bool]) -> bool:
    """Whether `condition` becomes true within DEADLINE_SECONDS (polled every 10 ms)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_running_step_keeps_its_heartbeat_fresh(ledger: Ledger) -> None:
    job, _ = ledger.create_job(
        dataset="sales", source_uri="/a", source_name="a", content_sha256="c" * 64, size_bytes=1
    )
    policy = StepPolicy(heartbeat_seconds=0.05)
    with job_step(ledger, job.job_id, "run-1", "slow step", policy) as step:
        first = ledger.get(job.job_id).last_heartbeat_at
        # A slow API call, say: nothing in the step beats by itself. However loaded the
        # machine, the thread beats on its own within the (generous) deadline.
        assert eventually(lambda: step.heartbeat.beats >= 3)
        assert ledger.get(job.job_id).last_heartbeat_at > first  # type: ignore[operator]


def test_a_cancelled_job_stops_its_step(ledger: Ledger) -> None:
    job, _ = ledger.create_job(
        dataset="sales", source_uri="/a", source_name="a", content_sha256="d" * 64, size_bytes=1
    )
    policy = StepPolicy(heartbeat_seconds=0.05)
    with (
        pytest.raises(dg.Failure, match="not held by run run-1"),
        job_step(ledger, job.job_id, "run-1", "long step", policy) as step,
    ):
        ledger.cancel(job.job_id)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:  # a step working chunk after chunk
            time.sleep(0.02)
            step.heartbeat.check()  # what every chunk loop does
    assert ledger.get(job.job_id).status is JobStatus.CANCELLED


def test_heartbeat_survives_a_database_blip(ledger: Ledger) -> None:
    class Flaky(Ledger):
        calls = 0

        def heartbeat(self, *args: object, **kwargs: object) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("database restarting")
            super().heartbeat(*args, **kwargs)  # type: ignore[arg-type]

    flaky = Flaky(ledger.engine)
    job, _ = flaky.create_job(
        dataset="sales", source_uri="/a", source_name="a", content_sha256="e" * 64, size_bytes=1
    )
    flaky.begin_run(job.job_id, "run-1")
    beat = Heartbeat(flaky, job.job_id, "run-1", 0.02).start()
    assert eventually(lambda: beat.beats >= 2)  # the failed first beat did not end the thread
    beat.stop()
    beat.check()
    assert beat.beats >= 2


def test_a_failure_the_database_outage_hid_is_recorded_once_it_is_back(ledger: Ledger) -> None:
    """The database is down when a step fails, and back when Dagster retries the step in the
    same run: the retry first writes the failed attempt, so the outage leaves its trace."""

    class Outage(Ledger):
        down = True  # exactly while the failure is being recorded

        def retry_in_run(self, *args: object, **kwargs: object) -> Any:
            if Outage.down:
                Outage.down = False
                raise sa.exc.OperationalError("UPDATE jobs", {}, ConnectionError("gone"))
            return super().retry_in_run(*args, **kwargs)  # type: ignore[arg-type]

    outage = Outage(ledger.engine, max_attempts=3)
    job, _ = outage.create_job(
        dataset="sales", source_uri="/a", source_name="a", content_sha256="f" * 64, size_bytes=1
    )
    policy = StepPolicy(backoff=Backoff(base_seconds=0.01, jitter=0.0), heartbeat_seconds=0)
    cut = sa.exc.OperationalError("COPY sales_fact", {}, ConnectionError("server closed"))
    with (
        pytest.raises(dg.RetryRequested),
        job_step(outage, job.job_id, "run-1", "load", policy),
    ):
        raise cut  # a database disconnect: transient, retried in the run
    unrecorded = ledger.get(job.job_id)
    assert (unrecorded.attempts, unrecorded.retry_count) == (1, 0)  # the write failed

    with job_step(outage, job.job_id, "run-1", "load", policy) as step:  # Dagster's retry
        assert step.job.attempts == 2

    after = ledger.get(job.job_id)
    assert (after.status, after.attempts, after.retry_count) == (JobStatus.PROCESSING, 2, 1)
    assert after.error_type is ErrorType.TRANSIENT
    [first, second] = ledger.attempts(job.job_id)
    assert (first["outcome"], first["error_type"]) == ("failed", "transient")
    assert "recorded late" in first["error_message"]
    assert second["attempt"] == 2

    with job_step(outage, job.job_id, "run-1", "load", policy):  # written once, not again
        pass
    assert ledger.get(job.job_id).retry_count == 1
