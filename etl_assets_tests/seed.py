"""One job at a time in a chosen state and at chosen times, for the alert and CLI tests
(ops_seed.seed_ledger writes the fixed eleven-job scenario; this writes what a test needs).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import sqlalchemy as sa
from ops_seed import _job

from etl_assets.ledger.schema import jobs

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

    Started jobs started 10 minutes before `now` and beat 10 s before; finished ones
    finished 5 minutes before (a failed job's completed_at follows its `updated_at`, as the
    ledger sets both when a job fails). Returns the job id.
    """
    n = next(_serial)
    row: dict[str, Any] = {"content_sha256": f"{n:064x}", "source_name": f"seed-{n}.csv"}
    if status != "pending":
        row.update(attempts=1, updated_at=now - dt.timedelta(minutes=5))
    if status in ("processing", "completed", "failed"):
        row.update(
            started_at=now - dt.timedelta(minutes=10),
            last_heartbeat_at=now - dt.timedelta(seconds=10),
        )
    if status == "completed":
        row["completed_at"] = now - dt.timedelta(minutes=5)
    if status == "failed":
        row.update(retry_count=1, error_type="permanent", error_message="seeded failure")
    row |= values
    if status == "failed" and "completed_at" not in values:
        row["completed_at"] = row["updated_at"]
    job = _job(f"S{n}", now - age, status, **row)
    with engine.begin() as conn:
        conn.execute(jobs.insert().values(**job))
    return str(job["job_id"])
