"""The jobs ledger on SQLite and PostgreSQL: creation, claims, transitions, ownership."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from etl_assets.db import create_engine, utcnow
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger, quarantine
from etl_assets.ledger.errors import IllegalTransition, JobNotFound, JobNotOwned
from etl_assets.ledger.ledger import new_job_id
from etl_assets.ledger.models import ALLOWED_TRANSITIONS
from etl_assets.ledger.schema import jobs


def make_job(ledger: Ledger, name: str = "a.csv", priority: int = 0) -> Job:
    job, created = ledger.create_job(
        dataset="sales",
        source_uri=f"/archive/{name}",
        source_name=name,
        content_sha256=name.ljust(64, "0"),
        size_bytes=10,
        priority=priority,
    )
    assert created
    return job


def processing_job(ledger: Ledger, run_id: str = "run-1") -> Job:
    job = make_job(ledger)
    [claimed] = ledger.claim_due(1)
    assert claimed.job_id == job.job_id
    return ledger.begin_run(job.job_id, run_id)


def test_job_ids_sort_by_creation_time() -> None:
    earlier = new_job_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    later = new_job_id(dt.datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=dt.UTC))
    assert len(earlier) == 26
    assert earlier < later
    assert not set(earlier) & set(".|,[]")  # safe as a dynamic partition key


def test_create_job_is_pending_with_the_configured_budget(ledger: Ledger) -> None:
    job = make_job(ledger, "north.csv", priority=5)
    assert job.status is JobStatus.PENDING
    assert (job.attempts, job.retry_count, job.max_attempts, job.priority) == (0, 0, 3, 5)
    assert job.title == "north.csv"
    assert ledger.get(job.job_id) == job


def test_same_content_is_one_job(ledger: Ledger) -> None:
    first = make_job(ledger, "a.csv")
    again, created = ledger.create_job(
        dataset="sales",
        source_uri="/elsewhere/b.csv",
        source_name="b.csv",
        content_sha256=first.content_sha256,
        size_bytes=10,
    )
    assert not created
    assert again.job_id == first.job_id
    assert len(ledger.list_jobs()) == 1


def test_claim_takes_priority_then_age_and_respects_the_limit(ledger: Ledger) -> None:
    old = make_job(ledger, "old.csv")
    new = make_job(ledger, "new.csv")
    urgent = make_job(ledger, "urgent.csv", priority=10)
    claimed = ledger.claim_due(2)
    assert [j.job_id for j in claimed] == [urgent.job_id, old.job_id]
    assert all(j.status is JobStatus.PROCESSING and j.attempts == 1 for j in claimed)
    assert [j.job_id for j in ledger.claim_due(10)] == [new.job_id]
    assert ledger.claim_due(10) == []


def test_claim_records_an_attempt_and_skips_jobs_not_yet_due(ledger: Ledger) -> None:
    later = make_job(ledger, "later.csv")
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.job_id == later.job_id)
            .values(next_attempt_at=utcnow() + dt.timedelta(minutes=5))
        )
    assert ledger.claim_due(5) == []
    [claimed] = ledger.claim_due(5, now=utcnow() + dt.timedelta(minutes=6))
    [attempt] = ledger.attempts(claimed.job_id)
    assert (attempt["attempt"], attempt["outcome"], attempt["run_id"]) == (1, "running", None)


def test_begin_run_attaches_the_run_once(ledger: Ledger) -> None:
    job = processing_job(ledger, "run-1")
    assert job.run_id == "run-1"
    assert job.started_at is not None
    assert ledger.begin_run(job.job_id, "run-1") == job  # a later step of the same run
    with pytest.raises(IllegalTransition, match="held by run run-1"):
        ledger.begin_run(job.job_id, "run-2")
    assert ledger.attempts(job.job_id)[0]["run_id"] == "run-1"


def test_a_run_launched_by_hand_claims_a_pending_job(ledger: Ledger) -> None:
    job = make_job(ledger)
    started = ledger.begin_run(job.job_id, "manual-run")
    assert (started.status, started.attempts, started.run_id) == (
        JobStatus.PROCESSING,
        1,
        "manual-run",
    )
    assert ledger.claim_due(5) == []  # the dispatcher never starts it a second time


def test_complete_sets_counters_and_closes_the_attempt(ledger: Ledger) -> None:
    job = processing_job(ledger)
    ledger.set_rows_total(job.job_id, "run-1", 10)
    with ledger.engine.begin() as conn:
        quarantine.add_rows(
            conn,
            job.job_id,
            "validate",
            [{"row_number": 3, "raw_row": {"a": "x"}, "reason": "bad"}],
        )
        done = ledger.complete(
            conn, job.job_id, "run-1", rows_loaded=8, rows_duplicate=1, metrics={"chunks": 1}
        )
    assert done.status is JobStatus.COMPLETED
    assert done.completed_at is not None
    assert (done.rows_loaded, done.rows_quarantined, done.rows_duplicate) == (8, 1, 1)
    assert done.metrics == {"chunks": 1}
    assert ledger.attempts(job.job_id)[0]["outcome"] == "succeeded"


def test_complete_refuses_when_rows_are_unaccounted_for(ledger: Ledger) -> None:
    job = processing_job(ledger)
    ledger.set_rows_total(job.job_id, "run-1", 10)
    with (
        pytest.raises(ValueError, match="10 rows read but 9 accounted for"),
        ledger.engine.begin() as conn,
    ):
        ledger.complete(conn, job.job_id, "run-1", rows_loaded=9, rows_duplicate=0, metrics={})
    assert ledger.get(job.job_id).status is JobStatus.PROCESSING


def test_fail_records_the_error_and_counts_the_retry(ledger: Ledger) -> None:
    job = processing_job(ledger)
    failed = ledger.fail(
        job.job_id,
        error_type=ErrorType.PERMANENT,
        message="bad header",
        traceback="Traceback ...",
        run_id="run-1",
    )
    assert failed.status is JobStatus.FAILED
    assert (failed.error_type, failed.error_message, failed.error_traceback) == (
        ErrorType.PERMANENT,
        "bad header",
        "Traceback ...",
    )
    assert failed.retry_count == 1
    attempt = ledger.attempts(job.job_id)[0]
    assert (attempt["outcome"], attempt["error_type"]) == ("failed", "permanent")


def test_an_in_run_retry_opens_the_next_attempt_after_the_failed_one(ledger: Ledger) -> None:
    job = processing_job(ledger)
    # A retry_at computed before a slow transaction may be past when the attempt ends.
    ledger.retry_in_run(
        job.job_id,
        "run-1",
        error_type=ErrorType.TRANSIENT,
        message="HTTP 503",
        traceback=None,
        retry_at=utcnow() - dt.timedelta(seconds=5),
    )
    failed, retried = ledger.attempts(job.job_id)
    assert (failed["outcome"], retried["outcome"]) == ("failed", "running")
    assert retried["started_at"] >= failed["ended_at"]


def test_another_run_cannot_fail_or_complete_the_job(ledger: Ledger) -> None:
    job = processing_job(ledger, "run-1")
    with pytest.raises(IllegalTransition):
        ledger.fail(job.job_id, error_type=ErrorType.TRANSIENT, message="x", run_id="run-2")
    with pytest.raises(IllegalTransition), ledger.engine.begin() as conn:
        ledger.complete(conn, job.job_id, "run-2", rows_loaded=0, rows_duplicate=0, metrics={})
    assert ledger.get(job.job_id).status is JobStatus.PROCESSING


def test_manual_retry_gives_a_fresh_budget_and_keeps_history(ledger: Ledger) -> None:
    job = processing_job(ledger)
    ledger.fail(job.job_id, error_type=ErrorType.TRANSIENT, message="API down", run_id="run-1")
    retried = ledger.retry(job.job_id)
    assert retried.status is JobStatus.PENDING
    assert (retried.attempts, retried.retry_count, retried.max_attempts) == (1, 1, 4)
    assert retried.error_message == "API down"  # kept until the next attempt ends
    [again] = ledger.claim_due(1)
    assert again.run_key == f"{job.job_id}:2"  # a new run_key: Dagster will launch it
    assert len(ledger.attempts(job.job_id)) == 2


def test_cancel_pending_and_processing(ledger: Ledger) -> None:
    pending = make_job(ledger, "p.csv")
    assert ledger.cancel(pending.job_id).status is JobStatus.CANCELLED
    running = processing_job(ledger)
    assert ledger.cancel(running.job_id).status is JobStatus.CANCELLED
    assert ledger.attempts(running.job_id)[0]["outcome"] == "cancelled"
    with pytest.raises(JobNotOwned):
        ledger.heartbeat(running.job_id, "run-1")  # the run learns it must stop


@pytest.mark.parametrize(
    ("move", "from_status"),
    [
        ("retry", JobStatus.PENDING),
        ("retry", JobStatus.COMPLETED),
        ("cancel", JobStatus.COMPLETED),
        ("cancel", JobStatus.FAILED),
        ("begin_run", JobStatus.COMPLETED),
        ("begin_run", JobStatus.CANCELLED),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(
    ledger: Ledger, move: str, from_status: JobStatus
) -> None:
    job = make_job(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(jobs).where(jobs.c.job_id == job.job_id).values(status=from_status.value)
        )
    before = ledger.get(job.job_id)
    with pytest.raises(IllegalTransition, match=f"from {from_status}"):
        if move == "begin_run":
            ledger.begin_run(job.job_id, "run-x")
        else:
            getattr(ledger, move)(job.job_id)
    assert ledger.get(job.job_id) == before


def test_the_transition_table_matches_the_design() -> None:
    s = JobStatus
    assert {(a.value, b.value) for a, b in ALLOWED_TRANSITIONS} == {
        ("pending", "processing"),
        ("processing", "completed"),
        ("processing", "pending"),
        ("processing", "failed"),
        ("failed", "pending"),
        ("cancelled", "pending"),
        ("pending", "cancelled"),
        ("processing", "cancelled"),
    }
    assert (s.COMPLETED, s.PENDING) not in ALLOWED_TRANSITIONS


def test_a_cancelled_job_can_be_retried_by_hand(ledger: Ledger) -> None:
    job = make_job(ledger)
    ledger.cancel(job.job_id)
    again = ledger.retry(job.job_id)
    assert (again.status, again.completed_at, again.max_attempts) == (
        JobStatus.PENDING,
        None,
        job.attempts + ledger.max_attempts,
    )
    [claimed] = ledger.claim_due(1)
    assert claimed.job_id == job.job_id


def test_unknown_job(ledger: Ledger) -> None:
    with pytest.raises(JobNotFound, match="NOPE"):
        ledger.get("NOPE")


def test_a_check_constraint_guards_the_attempt_budget(ledger: Ledger) -> None:
    job = make_job(ledger)
    with pytest.raises(sa.exc.IntegrityError), ledger.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.job_id == job.job_id).values(attempts=4))


def test_concurrent_dispatchers_never_claim_the_same_job(database_url: str) -> None:
    """Four dispatchers, each with its own connection pool, race over 200 pending jobs."""
    setup = Ledger(create_engine(database_url))
    for n in range(200):
        make_job(setup, f"job-{n:03d}.csv")

    claims: list[list[str]] = []
    barrier = threading.Barrier(4)

    def dispatcher() -> None:
        engine = create_engine(database_url)
        ledger = Ledger(engine)
        mine: list[str] = []
        barrier.wait()
        while batch := ledger.claim_due(7):
            mine.extend(job.job_id for job in batch)
        claims.append(mine)
        engine.dispose()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [job_id for mine in claims for job_id in mine]
    assert len(everything) == 200
    assert len(set(everything)) == 200
    assert setup.status_counts() == {"processing": 200}
    setup.engine.dispose()


def test_a_run_that_failed_the_job_cannot_restart_it(ledger: Ledger) -> None:
    """A later step of the run whose earlier step failed the job is refused."""
    job = processing_job(ledger, "run-1")
    ledger.fail(job.job_id, error_type=ErrorType.TRANSIENT, message="x", run_id="run-1")
    with pytest.raises(IllegalTransition, match="this run already ended it"):
        ledger.begin_run(job.job_id, "run-1")
    assert ledger.get(job.job_id).status is JobStatus.FAILED
    # A new run (say, re-executed from the Dagster UI) is a manual retry.
    again = ledger.begin_run(job.job_id, "run-2")
    assert (again.status, again.attempts, again.run_id) == (JobStatus.PROCESSING, 2, "run-2")
