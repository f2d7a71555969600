"""The `transaction.parsed` event of a job whose load committed: what the job touched.

Recorded in the load's last transaction (with the job's move to `completed`), so the event
exists exactly when the load does; its handlers run after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.datasets.base import Dataset
from etl_assets.events.store import TRANSACTION_PARSED, dispatch_event, events, record_event
from etl_assets.ledger import Job

log = logging.getLogger(__name__)


def record_transaction_parsed(
    conn: sa.Connection,
    dataset: Dataset,
    job: Job,
    seen: Mapping[str, set[str]] | None = None,
    *,
    source: str = "load",
) -> int:
    """Record `transaction.parsed` for `job` in the caller's transaction; returns its id.

    The payload names the job, its dataset and counters, what `source` loaded the rows, and
    per payload key of the dataset's `event_keys` the distinct values the rows hold.

    `seen` (payload key -> values) is what the load collected from every row it wrote, when
    one run loaded them all: it saves reading the job's rows back (0.5 s per 1M rows). It
    may name a little more than the job's rows hold (a line another job's row won over):
    a downstream refresh of one key too many recomputes it to the same values. Without it
    (a resumed load), the values come from the fact table.
    """
    payload = _job_payload(job, source)
    for key, column in dataset.event_keys.items():
        if seen is not None:
            payload[key] = sorted(seen.get(key, ()))
        else:
            payload[key] = touched(conn, dataset.fact_table, column, [job.job_id])
    return record_event(conn, TRANSACTION_PARSED, payload, job_id=job.job_id, dataset=dataset.name)


def collect_touched(
    seen: dict[str, set[str]], lines: pd.DataFrame, event_keys: Mapping[str, str]
) -> None:
    """Add what `lines` (fact rows) name to `seen`: per payload key of `event_keys`, the
    distinct values of its column, as text."""
    for key, column in event_keys.items():
        seen.setdefault(key, set()).update(str(value) for value in lines[column].unique())


def record_rows_parsed(conn: sa.Connection, dataset: Dataset, job: Job, lines: pd.DataFrame) -> int:
    """Record `transaction.parsed` for rows of `job` loaded later (quarantined rows that a
    retry loaded), naming what those rows touch; in the caller's transaction."""
    seen: dict[str, set[str]] = {}
    collect_touched(seen, lines, dataset.event_keys)
    return record_transaction_parsed(conn, dataset, job, seen, source="failed-rows retry")


def _job_payload(job: Job, source: str) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "dataset": job.dataset,
        "source": source,
        "rows_total": job.rows_total,
        "rows_loaded": job.rows_loaded,
        "rows_quarantined": job.rows_quarantined,
        "rows_duplicate": job.rows_duplicate,
    }


def touched(
    conn: sa.Connection, fact_table: sa.Table, column: str, job_ids: list[str]
) -> list[str]:
    """Distinct values of `column` in the rows the jobs loaded, sorted, as text."""
    stmt = (
        sa.select(fact_table.c[column])
        .where(fact_table.c.job_id.in_(job_ids))
        .distinct()
        .order_by(fact_table.c[column])
    )
    values: list[object] = list(conn.execute(stmt).scalars())
    return [str(value) for value in values]


def dispatch_after_commit(engine: Engine, event_id: int) -> None:
    """Run the event's handlers; a failure here never fails the load that committed.

    Whatever goes wrong (a handler, or the database while recording outcomes) leaves the
    event `pending` or `failed`, for `etl events retry`.
    """
    try:
        dispatch_event(engine, event_id)
    except Exception:  # the load is committed; the event stays retryable
        log.exception(f"Event {event_id}: handlers not run; `etl events retry {event_id}`")


def dispatch_job_events(engine: Engine, job_id: str) -> None:
    """Run the handlers of the job's events that have not run yet (after its step ended)."""
    try:
        with engine.connect() as conn:
            event_ids: list[int] = list(
                conn.execute(
                    sa.select(events.c.id)
                    .where(events.c.job_id == job_id, events.c.status == "pending")
                    .order_by(events.c.id)
                ).scalars()
            )
    except Exception:  # the load is committed; the events stay retryable
        log.exception(f"job={job_id}: events not dispatched; `etl events retry --all-failed`")
        return
    for event_id in event_ids:
        dispatch_after_commit(engine, event_id)
