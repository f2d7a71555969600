"""Retention: `etl prune` removes old finished jobs from the ledger and from Dagster.

A job is removed when it finished (completed or cancelled) longer ago than the retention
period; dead letters (failed jobs) are kept longer, for someone to look at them. Removing a
job deletes its attempts and quarantined rows (foreign keys cascade), its staging folder, its
archived source file when no other job uses it, its events whose handlers all ran and that
every downstream table absorbed (a `transaction.parsed` event lists every customer the job
touched: they are the bulk of the events table; pending and failed events stay for `etl
events retry`, unabsorbed ones for the next refresh), and its Dagster partition (Dagster
advises under 100,000 partitions per asset), and leaves a tombstone in `pruned_jobs`: the
warehouse's rows keep their job id, so lineage still resolves.

Work goes in batches, each its own short transaction that skips rows another transaction
holds (PostgreSQL), so running jobs are never blocked behind a prune. A partition is deleted
before its ledger row: a prune that stops half-way leaves ledger rows that the next prune
picks up again, never partitions without a job to explain them. A job that is retried
while it is being pruned keeps its row (the delete re-checks the status) and gets its
partition back from the dispatch sensor, which adds it on every claim.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.datasets.base import partitions_name
from etl_assets.db import is_postgres, utcnow
from etl_assets.downstream.registry import absorbed_by_consumers
from etl_assets.events.store import events
from etl_assets.ledger.models import JobStatus
from etl_assets.ledger.schema import jobs, pruned_jobs

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
DEAD_LETTER_STATUSES = (JobStatus.FAILED.value,)
PRUNABLE_STATUSES = (JobStatus.COMPLETED.value, JobStatus.CANCELLED.value)


def parse_duration(text: str) -> dt.timedelta:
    """`30d`, `12h` or `90m` as a timedelta; ValueError with the accepted forms otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write it as 30d, 12h or 90m")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class PruneReport:
    """What a prune removed (or, on a dry run, would remove)."""

    finished: int = 0
    dead_letters: int = 0
    partitions_deleted: int = 0
    events_deleted: int = 0
    files_deleted: int = 0
    batches: int = 0
    job_ids: list[str] = field(default_factory=list, repr=False)  # removed, oldest first

    @property
    def jobs(self) -> int:
        """Jobs removed in all."""
        return self.finished + self.dead_letters


def prune(
    engine: Engine,
    *,
    older_than: dt.timedelta,
    dead_letters_older_than: dt.timedelta,
    delete_partitions: Callable[[Mapping[str, list[str]]], int] | None = None,
    staging_dir: Path | None = None,
    batch_size: int = 1000,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PruneReport:
    """Remove finished jobs older than `older_than` and dead letters older than
    `dead_letters_older_than`, `batch_size` jobs per transaction.

    `delete_partitions({dataset: job ids})` removes the jobs' Dagster partitions and returns
    how many it deleted (see `dagster_partition_deleter`); `staging_dir` is where their
    staged chunks and archived sources live.
    """
    now = now or utcnow()
    report = PruneReport()
    rules = [
        (PRUNABLE_STATUSES, now - older_than, "finished"),
        (DEAD_LETTER_STATUSES, now - dead_letters_older_than, "dead_letters"),
    ]
    for statuses, cutoff, counter in rules:
        if dry_run:
            setattr(report, counter, _count(engine, statuses, cutoff))
            continue
        skipped: set[str] = set()  # held by a running transaction or no longer finished
        while batch := _candidates(engine, statuses, cutoff, batch_size, exclude=skipped):
            keys = [row.job_id for row in batch]
            if delete_partitions is not None:
                by_dataset: dict[str, list[str]] = {}
                for row in batch:
                    by_dataset.setdefault(row.dataset, []).append(row.job_id)
                report.partitions_deleted += delete_partitions(by_dataset)
            removed, events_deleted = _delete_batch(engine, keys, statuses, now)
            report.events_deleted += events_deleted
            if staging_dir is not None:
                report.files_deleted += _delete_files(engine, staging_dir, batch, removed)
            skipped.update(set(keys) - set(removed))
            report.job_ids.extend(removed)
            setattr(report, counter, getattr(report, counter) + len(removed))
            report.batches += 1
    return report


def _due(statuses: Iterable[str], cutoff: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(jobs.c.status.in_(list(statuses)), jobs.c.completed_at < cutoff)


def _count(engine: Engine, statuses: Iterable[str], cutoff: dt.datetime) -> int:
    """How many jobs a prune would remove under one rule."""
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).where(_due(statuses, cutoff))).scalar_one()
        )


def _candidates(
    engine: Engine,
    statuses: Iterable[str],
    cutoff: dt.datetime,
    limit: int,
    exclude: set[str],
) -> list[sa.Row[tuple[str, str]]]:
    """The oldest finished jobs of `statuses` that ended before `cutoff` (the index on
    status, completed_at answers this without reading the rest of the ledger)."""
    stmt = (
        sa.select(jobs.c.job_id, jobs.c.source_uri, jobs.c.dataset)
        .where(_due(statuses, cutoff))
        .order_by(jobs.c.completed_at, jobs.c.job_id)
        .limit(limit)
    )
    if exclude:
        stmt = stmt.where(jobs.c.job_id.not_in(sorted(exclude)))
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def _delete_batch(
    engine: Engine, job_ids: list[str], statuses: Iterable[str], now: dt.datetime
) -> tuple[list[str], int]:
    """Tombstone and delete the jobs that are still finished and their handled events;
    returns the ids deleted and how many events went."""
    still_finished = sa.select(
        jobs.c.job_id, jobs.c.dataset, jobs.c.status, jobs.c.completed_at, jobs.c.rows_loaded
    ).where(jobs.c.job_id.in_(job_ids), jobs.c.status.in_(list(statuses)))
    with engine.begin() as conn:
        if is_postgres(conn):
            # Rows a running transaction holds (a retry of this very job) are left for later.
            still_finished = still_finished.with_for_update(skip_locked=True)
        rows = conn.execute(still_finished).all()
        if not rows:
            return [], 0
        conn.execute(
            pruned_jobs.insert(),
            [dict(row._mapping, pruned_at=now) for row in rows],
        )
        deleted = [row.job_id for row in rows]
        conn.execute(sa.delete(jobs).where(jobs.c.job_id.in_(deleted)))
        handled = sa.delete(events).where(
            events.c.job_id.in_(deleted),
            events.c.status == "done",
            absorbed_by_consumers(conn),
        )
        events_deleted = conn.execute(handled).rowcount
    return deleted, events_deleted


def _delete_files(
    engine: Engine, staging_dir: Path, batch: list[sa.Row[tuple[str, str]]], removed: list[str]
) -> int:
    """Delete the removed jobs' staging folders and the archived sources no job still uses."""
    from etl_assets.intake.publisher import source_archive
    from etl_assets.resources.staging import StagingResource

    staging = StagingResource(base_dir=str(staging_dir))
    count = 0
    gone = set(removed)
    for job_id in removed:
        if staging.job_dir(job_id).exists():
            staging.remove_job(job_id)
            count += 1
    sources = {row.source_uri for row in batch if row.job_id in gone}
    if not sources:
        return count
    with engine.connect() as conn:
        in_use: set[str] = set(
            conn.execute(
                sa.select(jobs.c.source_uri).where(jobs.c.source_uri.in_(sources))
            ).scalars()
        )
    archive = source_archive(staging_dir).resolve()
    for uri in sources - in_use:
        path = Path(uri)
        # Only files of our own archive: a source elsewhere belongs to whoever put it there.
        if path.resolve().is_relative_to(archive) and path.is_file():
            path.unlink()
            count += 1
    return count


def dagster_partition_deleter(instance: object) -> Callable[[Mapping[str, list[str]]], int]:
    """A `delete_partitions` callback for `prune` that removes job ids from their dataset's
    dynamic partitions (one call per key: Dagster has no bulk delete)."""
    from dagster import DagsterInstance

    assert isinstance(instance, DagsterInstance)

    def delete(keys_by_dataset: Mapping[str, list[str]]) -> int:
        deleted = 0
        for dataset, keys in keys_by_dataset.items():
            name = partitions_name(dataset)
            doomed = [key for key in keys if instance.has_dynamic_partition(name, key)]
            for key in doomed:
                instance.delete_dynamic_partition(name, key)
            deleted += len(doomed)
        return deleted

    return delete
