"""`etl prune`: old finished jobs leave the ledger, their files and their Dagster partitions;
dead letters stay longer; running work and recent jobs are never touched."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from etl_assets.cli import main
from etl_assets.db import utcnow
from etl_assets.downstream.base import downstream_watermarks
from etl_assets.events.store import events, record_event
from etl_assets.ledger import JobStatus, Ledger
from etl_assets.ledger.schema import job_attempts, jobs, pruned_jobs, quarantined_rows
from etl_assets.ops.retention import dagster_partition_deleter, parse_duration, prune

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def seed_job(
    engine: sa.Engine,
    job_id: str,
    status: JobStatus,
    finished_days_ago: float | None,
    *,
    source_uri: str | None = None,
) -> None:
    """One job row (with an attempt and a quarantined row) as the ledger would leave it."""
    finished = None if finished_days_ago is None else NOW - dt.timedelta(days=finished_days_ago)
    created = (finished or NOW) - dt.timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                job_id=job_id,
                title=job_id,
                dataset="sales",
                source_uri=source_uri or f"/nowhere/{job_id}.csv",
                source_name=f"{job_id}.csv",
                content_sha256=job_id.ljust(64, "0"),
                size_bytes=10,
                status=status.value,
                attempts=1,
                max_attempts=3,
                created_at=created,
                updated_at=finished or NOW,
                completed_at=finished,
                rows_loaded=7,
            )
        )
        conn.execute(
            job_attempts.insert().values(
                job_id=job_id, attempt=1, started_at=created, outcome="running"
            )
        )
        conn.execute(
            quarantined_rows.insert().values(
                job_id=job_id,
                row_number=2,
                raw_row={"a": "b"},
                reason="bad",
                stage="validate",
                created_at=created,
                updated_at=created,
            )
        )


def ids(engine: sa.Engine, table: sa.Table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.job_id)).scalars())


def exact_counts(engine: sa.Engine) -> dict[str, int]:
    """Jobs per status counted the slow way, to compare with the trigger-kept counts."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status))
        return {status: int(n) for status, n in rows}


@pytest.fixture
def seeded(engine: sa.Engine) -> sa.Engine:
    seed_job(engine, "old_done", JobStatus.COMPLETED, 40)
    seed_job(engine, "old_cancelled", JobStatus.CANCELLED, 35)
    seed_job(engine, "new_done", JobStatus.COMPLETED, 2)
    seed_job(engine, "old_dead", JobStatus.FAILED, 40)  # a dead letter: kept until 90 days
    seed_job(engine, "ancient_dead", JobStatus.FAILED, 100)
    seed_job(engine, "waiting", JobStatus.PENDING, None)
    seed_job(engine, "running", JobStatus.PROCESSING, None)
    return engine


def test_prune_removes_old_finished_jobs_and_keeps_the_rest(seeded: sa.Engine) -> None:
    report = prune(
        seeded,
        older_than=dt.timedelta(days=30),
        dead_letters_older_than=dt.timedelta(days=90),
        batch_size=1,
        now=NOW,
    )
    assert (report.finished, report.dead_letters, report.batches) == (2, 1, 3)
    assert ids(seeded, jobs) == {"new_done", "old_dead", "waiting", "running"}
    assert ids(seeded, pruned_jobs) == {"old_done", "old_cancelled", "ancient_dead"}
    # Attempts and quarantined rows went with their jobs.
    assert ids(seeded, job_attempts) == ids(seeded, jobs)
    assert ids(seeded, quarantined_rows) == ids(seeded, jobs)
    assert Ledger(seeded).status_counts() == exact_counts(seeded)
    with seeded.connect() as conn:
        tombstone = conn.execute(
            sa.select(pruned_jobs).where(pruned_jobs.c.job_id == "old_done")
        ).one()
    assert (tombstone.status, tombstone.rows_loaded) == ("completed", 7)


def test_prune_removes_the_absorbed_handled_events_of_pruned_jobs(seeded: sa.Engine) -> None:
    def event(conn: sa.Connection, job_id: str | None, status: str) -> int:
        event_id = record_event(
            conn,
            "transaction.parsed",
            {"job_id": job_id},
            job_id=job_id,
            dataset="sales" if job_id else None,
        )
        conn.execute(sa.update(events).where(events.c.id == event_id).values(status=status))
        return event_id

    with seeded.begin() as conn:
        event(conn, "old_done", "done")  # handled and absorbed: goes
        event(conn, "old_done", "failed")  # a handler failed: kept for `etl events retry`
        event(conn, "old_cancelled", "pending")
        event(conn, "new_done", "done")  # its job stays
        absorbed = event(conn, None, "done")  # not about a job
        # customer_rfm absorbed one event fewer: the next one must wait for its refresh
        conn.execute(downstream_watermarks.insert(), [
            {"name": "daily_sales", "last_event_id": absorbed, "updated_at": NOW},
            {"name": "stock_cover", "last_event_id": absorbed, "updated_at": NOW},
            {"name": "customer_rfm", "last_event_id": absorbed - 1, "updated_at": NOW},
        ])  # fmt: skip
        event(conn, "old_cancelled", "done")  # handled, not absorbed yet: kept

    report = prune(
        seeded,
        older_than=dt.timedelta(days=30),
        dead_letters_older_than=dt.timedelta(days=90),
        now=NOW,
    )
    assert report.events_deleted == 1
    with seeded.connect() as conn:
        left = conn.execute(sa.select(events.c.job_id, events.c.status).order_by(events.c.id))
        assert left.all() == [
            ("old_done", "failed"),
            ("old_cancelled", "pending"),
            ("new_done", "done"),
            (None, "done"),
            ("old_cancelled", "done"),
        ]


def test_a_dry_run_counts_and_removes_nothing(seeded: sa.Engine) -> None:
    report = prune(
        seeded,
        older_than=dt.timedelta(days=1),
        dead_letters_older_than=dt.timedelta(days=50),
        dry_run=True,
        now=NOW,
    )
    assert (report.finished, report.dead_letters) == (3, 1)
    assert len(ids(seeded, jobs)) == 7 and not ids(seeded, pruned_jobs)


def test_prune_deletes_partitions_staging_folders_and_unshared_sources(
    engine: sa.Engine, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    sources = staging / "sources" / "sales"
    sources.mkdir(parents=True)
    own, shared = sources / "own.csv", sources / "shared.csv"
    own.write_text("x"), shared.write_text("y")
    (staging / "jobs" / "old").mkdir(parents=True)
    seed_job(engine, "old", JobStatus.COMPLETED, 40, source_uri=str(own))
    seed_job(engine, "old2", JobStatus.COMPLETED, 40, source_uri=str(shared))
    seed_job(engine, "keeps_shared", JobStatus.COMPLETED, 1, source_uri=str(shared))
    instance.add_dynamic_partitions("sales_jobs", ["old", "old2", "keeps_shared"])

    report = prune(
        engine,
        older_than=dt.timedelta(days=30),
        dead_letters_older_than=dt.timedelta(days=90),
        delete_partitions=dagster_partition_deleter(instance),
        staging_dir=staging,
        now=NOW,
    )
    assert report.partitions_deleted == 2
    assert instance.get_dynamic_partitions("sales_jobs") == ["keeps_shared"]
    assert not own.exists() and shared.exists()
    assert not (staging / "jobs" / "old").exists()
    assert report.files_deleted == 2


def test_a_job_retried_meanwhile_is_not_pruned(seeded: sa.Engine) -> None:
    calls: list[list[str]] = []

    def retry_while_deleting_partitions(keys_by_dataset: Mapping[str, list[str]]) -> int:
        keys = [key for keys in keys_by_dataset.values() for key in keys]
        calls.append(keys)
        if "ancient_dead" in keys:  # an operator retries it between selection and delete
            Ledger(seeded).retry("ancient_dead")
        return len(keys)

    report = prune(
        seeded,
        older_than=dt.timedelta(days=30),
        dead_letters_older_than=dt.timedelta(days=90),
        delete_partitions=retry_while_deleting_partitions,
        now=NOW,
    )
    assert "ancient_dead" in ids(seeded, jobs) - ids(seeded, pruned_jobs)
    assert Ledger(seeded).get("ancient_dead").status is JobStatus.PENDING
    assert (report.finished, report.dead_letters) == (2, 0)  # and the loop did not spin
    assert calls[-1] == ["ancient_dead"]
    assert Ledger(seeded).status_counts() == exact_counts(seeded)


@pytest.mark.parametrize("text", ["30", "d", "3w", "-1d", ""])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="30d, 12h or 90m"):
        parse_duration(text)


def test_durations() -> None:
    assert parse_duration("30d") == dt.timedelta(days=30)
    assert parse_duration(" 12h ") == dt.timedelta(hours=12)
    assert parse_duration("90m") == dt.timedelta(minutes=90)


def test_etl_prune(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    recent = (utcnow() - NOW).days  # seed ages relative to today, as the command uses it
    seed_job(engine, "old", JobStatus.COMPLETED, 40 + recent)
    seed_job(engine, "dead", JobStatus.FAILED, 40 + recent)
    engine.dispose()
    runner = CliRunner()

    dry = runner.invoke(main, ["prune", "--older-than", "30d", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) | {"batches": 0} == {
        "finished": 1,
        "dead_letters": 0,  # 3 x 30 days by default
        "partitions_deleted": 0,
        "events_deleted": 0,
        "files_deleted": 0,
        "batches": 0,
        "jobs": 1,
        "dry_run": True,
    }
    done = runner.invoke(main, ["prune", "--older-than", "30d", "--dead-letters-older-than", "31d"])
    assert done.exit_code == 0, done.output
    assert "removed 2 jobs (1 finished, 1 dead letters)" in done.output

    bad = runner.invoke(main, ["prune", "--older-than", "a month"])
    assert bad.exit_code == 2 and "30d, 12h or 90m" in bad.output
