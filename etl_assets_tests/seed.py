"""Seeding the ledger with jobs in chosen states and at chosen times, for the monitoring tests.

Rows are written with plain INSERTs (the ledger's own methods always use the current time),
so a test can say "failed 20 minutes ago" and hand-compute what each query must return.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

import sqlalchemy as sa

from etl_assets.ledger.ledger import new_job_id
from etl_assets.ledger.schema import job_attempts, jobs, quarantined_rows

_serial = itertools.count()


def seed_job(
    engine: sa.Engine,
    status: str,
    *,
    now: dt.datetime,
    age: dt.timedelta = dt.timedelta(minutes=30),
    **values: Any,
) -> str:
    """Insert a job created `age` before `now` in `status`; `values` override any column.

    Finished jobs get plausible timestamps (completed or failed 5 minutes before `now`,
    started 10 minutes before). Returns the job id.
    """
    created = now - age
    n = next(_serial)
    row: dict[str, Any] = dict(
        job_id=new_job_id(created),
        title=f"seeded {n}",
        dataset="sales",
        source_uri=f"file:///seed/{n}.csv",
        source_name=f"{n}.csv",
        content_sha256=hashlib.sha256(f"seed-{n}".encode()).hexdigest(),
        size_bytes=100,
        status=status,
        priority=0,
        attempts=0 if status == "pending" else 1,
        retry_count=0,
        max_attempts=3,
        created_at=created,
        updated_at=now - dt.timedelta(minutes=5) if status != "pending" else created,
    )
    if status in ("processing", "completed", "failed"):
        row["started_at"] = now - dt.timedelta(minutes=10)
        row["last_heartbeat_at"] = now - dt.timedelta(seconds=10)
    if status == "completed":
        row["completed_at"] = now - dt.timedelta(minutes=5)
    if status == "failed":
        row.update(retry_count=1, error_type="permanent", error_message="seeded failure")
    row.update(values)
    with engine.begin() as conn:
        conn.execute(jobs.insert().values(**row))
    return str(row["job_id"])


def seed_attempt(
    engine: sa.Engine,
    job_id: str,
    attempt: int,
    outcome: str,
    started_at: dt.datetime,
    **values: Any,
) -> None:
    """Insert one attempt of a seeded job."""
    with engine.begin() as conn:
        conn.execute(
            job_attempts.insert().values(
                job_id=job_id, attempt=attempt, outcome=outcome, started_at=started_at, **values
            )
        )


def seed_quarantined_row(
    engine: sa.Engine, job_id: str, row_number: int, reason: str, *, now: dt.datetime
) -> None:
    """Insert one quarantined row of a seeded job."""
    with engine.begin() as conn:
        conn.execute(
            quarantined_rows.insert().values(
                job_id=job_id,
                row_number=row_number,
                raw_row={"order_id": f"O-{row_number}"},
                reason=reason,
                stage="validate",
                created_at=now,
                updated_at=now,
            )
        )
