"""A ledger seeded directly with known jobs, attempts and quarantined rows, relative to `now`,
for the ops read model, API and dashboard tests. The figures they expect are worked out by
hand in EXPECTED below from the rows written here.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import sqlalchemy as sa

from etl_assets.ledger.ledger import new_job_id
from etl_assets.ledger.schema import job_attempts, jobs, quarantined_rows

MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
_S = dt.timedelta(seconds=1)

# Hand-computed from the rows below, for a 24 h window and STUCK_AFTER_SECONDS=300.
EXPECTED: dict[str, Any] = {
    "counts_by_status": {
        "pending": 3,
        "processing": 2,
        "completed": 3,
        "failed": 2,
        "cancelled": 1,
    },
    "total_jobs": 11,
    # retry_count: B 1, C 1, D 3, I 1, the others 0
    "retry": {
        "jobs_retried": 4,
        "total_retries": 6,
        "avg_retries_per_job": 0.545,
        "max_retries": 3,
    },
    "completed_in_window": 2,  # A and B (K completed two days ago)
    "failed_in_window": 1,  # C (D failed two days ago)
    "failure_rate": 0.3333,  # 1 / (1 + 2)
    "failure_rate_all_time": 0.4,  # 2 failed / (3 completed + 2 failed)
    "avg_duration_seconds": 200.0,  # (A 100 s + B 300 s) / 2
    "rows_loaded_in_window": 297,  # A 97 + B 200
    "pending_total": 3,
    "queue_depth": [
        {"priority": 10, "pending": 1, "due": 1},
        {"priority": 0, "pending": 2, "due": 1},  # I waits for its backoff
    ],
    "quarantined_rows_open": 3,  # A's rows 2 and 3, C's row 5 (A's row 4 was loaded since)
}
C_REASON = "currency 'XXX' is not an ISO 4217 code"
C_ERROR = "sales-c.csv: missing required column(s) sku; the header has order_id"


def _job(letter: str, created: dt.datetime, status: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        job_id=new_job_id(created),
        title=f"job {letter}",
        dataset="sales",
        source_uri=f"/archive/{letter}.csv",
        source_name=f"sales-{letter.lower()}.csv",
        content_sha256=letter * 64,
        size_bytes=1000,
        status=status,
        priority=0,
        attempts=0,
        retry_count=0,
        max_attempts=3,
        run_id=None,
        error_type=None,
        error_message=None,
        error_traceback=None,
        created_at=created,
        updated_at=created,
        started_at=None,
        last_heartbeat_at=None,
        completed_at=None,
        next_attempt_at=None,
        rows_total=None,
        rows_processed=0,
        rows_loaded=0,
        rows_quarantined=0,
        rows_duplicate=0,
        checkpoint=None,
        metrics=None,
    )
    row.update(values)
    return row


def seed_rows(now: dt.datetime) -> dict[str, dict[str, Any]]:
    """The eleven jobs A..K (see EXPECTED), by letter."""
    a, b = now - 2 * HOUR, now - HOUR
    c, e, f = now - 30 * MIN, now - 15 * MIN, now - 100 * dt.timedelta(seconds=1)
    return {
        "A": _job("A", a, "completed", attempts=1, started_at=a, completed_at=a + 100 * _S,
                  updated_at=a + 100 * _S, rows_total=100, rows_processed=100, rows_loaded=97,
                  rows_quarantined=3, run_id="run-a", metrics={"load_seconds": 1.5}),
        "B": _job("B", b, "completed", attempts=2, retry_count=1, started_at=b,
                  completed_at=b + 300 * _S, updated_at=b + 300 * _S, rows_total=200,
                  rows_processed=200, rows_loaded=200, run_id="run-b2"),
        "C": _job("C", c, "failed", attempts=1, retry_count=1, started_at=c, run_id="run-c",
                  updated_at=now - 20 * MIN, completed_at=now - 20 * MIN,
                  error_type="permanent", error_message=C_ERROR,
                  error_traceback="Traceback (most recent call last):\n  secret frame\n"),
        "D": _job("D", now - 3 * DAY, "failed", attempts=3, retry_count=3, run_id="run-d",
                  updated_at=now - 2 * DAY, completed_at=now - 2 * DAY,
                  error_type="transient_exhausted",
                  error_message="FX API answered 503 on every attempt"),
        "E": _job("E", e, "processing", attempts=1, started_at=e, run_id="run-e",
                  last_heartbeat_at=now - 10 * MIN, rows_total=1000, rows_processed=250),
        "F": _job("F", f, "processing", attempts=1, started_at=f, run_id="run-f",
                  last_heartbeat_at=now - 10 * _S, rows_total=1000, rows_processed=500),
        "G": _job("G", now - 5 * MIN, "pending", priority=10),
        "H": _job("H", now - 4 * MIN, "pending"),
        "I": _job("I", now - 40 * MIN, "pending", attempts=1, retry_count=1,
                  next_attempt_at=now + HOUR, error_type="transient",
                  error_message="catalog API timed out"),
        "J": _job("J", now - 50 * MIN, "cancelled", completed_at=now - 45 * MIN),
        "K": _job("K", now - 2 * DAY, "completed", attempts=1, started_at=now - 2 * DAY,
                  completed_at=now - 2 * DAY + 50 * _S, rows_total=10, rows_processed=10,
                  rows_loaded=10, run_id="run-k"),
    }  # fmt: skip


def seed_ledger(engine: sa.Engine, now: dt.datetime) -> dict[str, str]:
    """Write the jobs, their attempts and quarantined rows; returns {letter: job_id}."""
    rows = seed_rows(now)
    ids = {letter: row["job_id"] for letter, row in rows.items()}
    r = rows
    attempts = [
        (ids["A"], 1, "run-a", r["A"]["started_at"], r["A"]["completed_at"], "succeeded", None),
        (ids["B"], 1, "run-b1", r["B"]["started_at"] - 2 * MIN, r["B"]["started_at"] - MIN,
         "failed", "FX API answered 503"),
        (ids["B"], 2, "run-b2", r["B"]["started_at"], r["B"]["completed_at"], "succeeded", None),
        (ids["C"], 1, "run-c", r["C"]["started_at"], r["C"]["updated_at"], "failed", C_ERROR),
        (ids["E"], 1, "run-e", r["E"]["started_at"], None, "running", None),
        (ids["F"], 1, "run-f", r["F"]["started_at"], None, "running", None),
    ]  # fmt: skip
    quarantined = [
        (ids["A"], 2, "quarantined", "quantity 'x' is not a number"),
        (ids["A"], 3, "quarantined", "order_date '2024-13-01' is not a date"),
        (ids["A"], 4, "loaded", "sku 'NOPE' is not in the catalog"),
        (ids["C"], 5, "quarantined", C_REASON),
    ]
    with engine.begin() as conn:
        conn.execute(jobs.insert(), list(rows.values()))
        conn.execute(
            job_attempts.insert(),
            [
                dict(job_id=j, attempt=n, run_id=run, started_at=s, ended_at=e, outcome=o,
                     error_type="transient" if o == "failed" else None, error_message=m)
                for j, n, run, s, e, o, m in attempts
            ],
        )  # fmt: skip
        conn.execute(
            quarantined_rows.insert(),
            [
                dict(
                    job_id=job_id,
                    row_number=line,
                    raw_row={"order_id": f"O-{line}", "quantity": "x"},
                    reason=reason,
                    stage="validate",
                    status=status,
                    created_at=now - HOUR + line * MIN,
                    updated_at=now - HOUR + line * MIN,
                    resolved_at=now if status == "loaded" else None,
                )
                for job_id, line, status, reason in quarantined
            ],
        )
    return ids


def free_port() -> int:
    """A TCP port free on the loopback interface now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
