"""Example responses of the ops API, shown in its OpenAPI description (and in docs/api.md)."""

from __future__ import annotations

from typing import Any

RUN = "4f0c7e1a-9b7d-4a43-8d51-2f6c3b1e9a10"
JOB = "01JD3S6S8F6Q2W5N1B7C9XKZ4M"
UI = "http://127.0.0.1:3000"

SUMMARY: dict[str, Any] = {
    "job_id": JOB,
    "title": "sales.csv",
    "dataset": "sales",
    "source_name": "sales.csv",
    "status": "failed",
    "priority": 0,
    "attempts": 1,
    "max_attempts": 3,
    "retry_count": 1,
    "error_type": "permanent",
    "error_message": "attempt 1, step sales_source_rows: sales.csv: missing required column(s) sku",
    "created_at": "2026-11-30T09:12:03.120000+00:00",
    "updated_at": "2026-11-30T09:12:09.800000+00:00",
    "started_at": "2026-11-30T09:12:05.010000+00:00",
    "completed_at": None,
    "rows_total": None,
    "rows_processed": 0,
    "rows_loaded": 0,
    "rows_quarantined": 0,
    "rows_duplicate": 0,
    "percent_complete": None,
    "run_id": RUN,
}

JOB_ROW: dict[str, Any] = {
    **{k: v for k, v in SUMMARY.items() if k != "percent_complete"},
    "source_uri": "/var/lib/etl/staging/sources/sales/9b1f….csv",
    "content_sha256": "9b1f3c0d5e…",
    "size_bytes": 48213,
    "error_traceback": "Traceback (most recent call last): … (operators only; null for viewers)",
    "last_heartbeat_at": "2026-11-30T09:12:09.700000+00:00",
    "next_attempt_at": None,
    "checkpoint": None,
    "metrics": None,
}


STUCK_ALERT: dict[str, Any] = {
    "rule": "stuck_jobs",
    "severity": "warning",
    "message": f"1 processing job(s) without a heartbeat for more than 300 s ({JOB}): the "
    "reaper takes them back unless their run is still queued; is the daemon running?",
    "value": 1,
    "threshold": 0,
}


def _json(example: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


EXAMPLES: dict[str, dict[str, Any]] = {
    "jobs": _json({"items": [SUMMARY], "total": 1, "limit": 50, "offset": 0}),
    "job": _json(
        {
            "job": JOB_ROW,
            "progress": {
                "rows_processed": 0,
                "rows_total": None,
                "percent_complete": None,
                "elapsed_seconds": 4.79,
                "rows_per_second": None,
                "eta_seconds": None,
            },
            "attempts": [
                {
                    "attempt": 1,
                    "run_id": RUN,
                    "started_at": "2026-11-30T09:12:05.010000+00:00",
                    "ended_at": "2026-11-30T09:12:09.800000+00:00",
                    "outcome": "failed",
                    "error_type": "permanent",
                    "error_message": SUMMARY["error_message"],
                    "duration_seconds": 4.79,
                    "dagster_run_url": f"{UI}/runs/{RUN}",
                }
            ],
            "dagster_run_url": f"{UI}/runs/{RUN}",
        }
    ),
    "upload": _json(
        {
            "duplicate": False,
            "message": f"job {JOB} created from sales.csv",
            "job": {
                **SUMMARY,
                "status": "pending",
                "error_type": None,
                "error_message": None,
                "retry_count": 0,
                "attempts": 0,
                "run_id": None,
                "started_at": None,
            },
        },
        "A new job was created.",
    ),
    "retry": _json(
        {
            "message": f"job {JOB} is pending again (priority 10, 3 attempts)",
            "job": {**SUMMARY, "status": "pending", "priority": 10, "max_attempts": 4},
        }
    ),
    "cancel": _json(
        {
            "message": f"job {JOB} cancelled; run {RUN}: termination requested",
            "job": {**SUMMARY, "status": "cancelled", "error_type": None, "error_message": None},
        }
    ),
    "failed_rows": _json(
        {
            "items": [
                {
                    "id": 42,
                    "job_id": JOB,
                    "dataset": "sales",
                    "source_name": "sales.csv",
                    "row_number": 7,
                    "raw_row": {"order_id": "O-1007", "currency": "XXX", "quantity": "2"},
                    "reason": "currency 'XXX' is not an ISO 4217 code",
                    "stage": "validate",
                    "status": "quarantined",
                    "retry_count": 0,
                    "created_at": "2026-11-30T09:12:07.000000+00:00",
                    "updated_at": "2026-11-30T09:12:07.000000+00:00",
                    "resolved_at": None,
                }
            ],
            "total": 1,
            "limit": 50,
            "offset": 0,
        }
    ),
    "row_retry": _json(
        {
            "row_id": 42,
            "status": "loaded",
            "message": "the row passed and was loaded",
            "retry_count": 1,
            "row": None,
        }
    ),
    "uploads": _json(
        {
            "active_uploads": 1,
            "pending_uploads": 2,
            "recent_uploads": [
                {
                    "job_id": JOB,
                    "title": "sales.csv",
                    "source_name": "sales.csv",
                    "dataset": "sales",
                    "status": "processing",
                    "rows_processed": 150000,
                    "rows_total": 300000,
                    "percent_complete": 50.0,
                    "started_at": "2026-11-30T09:12:05.010000+00:00",
                    "elapsed_seconds": 10.0,
                    "rows_per_second": 15000.0,
                    "eta_seconds": 10.0,
                    "created_at": "2026-11-30T09:12:03.120000+00:00",
                    "completed_at": None,
                    "error_message": None,
                }
            ],
        }
    ),
    "metrics": _json(
        {
            "generated_at": "2026-11-30T10:00:00+00:00",
            "window_seconds": 86400,
            "counts_by_status": {
                "pending": 3,
                "processing": 2,
                "completed": 3,
                "failed": 2,
                "cancelled": 1,
            },
            "total_jobs": 11,
            "retry": {
                "jobs_retried": 4,
                "total_retries": 6,
                "avg_retries_per_job": 0.545,
                "max_retries": 3,
            },
            "completed_in_window": 2,
            "failed_in_window": 1,
            "failure_rate": 0.3333,
            "failure_rate_all_time": 0.4,
            "avg_duration_seconds": 200.0,
            "rows_loaded_in_window": 297,
            "pending_total": 3,
            "queue_depth": [
                {"priority": 10, "pending": 1, "due": 1},
                {"priority": 0, "pending": 2, "due": 1},
            ],
            "stuck_after_seconds": 300,
            "stuck_jobs": [
                {
                    "job_id": JOB,
                    "title": "sales.csv",
                    "run_id": RUN,
                    "attempts": 1,
                    "last_heartbeat_at": "2026-11-30T09:50:00+00:00",
                    "heartbeat_age_seconds": 600.0,
                    "dagster_run_url": f"{UI}/runs/{RUN}",
                }
            ],
            "recent_failures": [
                {
                    "job_id": JOB,
                    "title": "sales.csv",
                    "dataset": "sales",
                    "error_type": "permanent",
                    "error_message": SUMMARY["error_message"],
                    "failed_at": "2026-11-30T09:40:00+00:00",
                    "attempts": 1,
                    "retry_count": 1,
                    "run_id": RUN,
                    "dagster_run_url": f"{UI}/runs/{RUN}",
                }
            ],
            "quarantined_rows_open": 3,
            "alerts": [STUCK_ALERT],
        }
    ),
    "activity": _json(
        {
            "bucket_seconds": 600,
            "start": "2026-11-30T09:10:00Z",
            "buckets": [
                {
                    "start": "2026-11-30T09:10:00Z",
                    "jobs_completed": 3,
                    "jobs_failed": 1,
                    "attempts_ended": 5,
                    "attempts_failed": 2,
                    "rows_loaded": 120000,
                    "rows_per_second": 200.0,
                    "error_rate": 0.4,
                },
                {
                    "start": "2026-11-30T09:20:00Z",
                    "jobs_completed": 0,
                    "jobs_failed": 0,
                    "attempts_ended": 0,
                    "attempts_failed": 0,
                    "rows_loaded": 0,
                    "rows_per_second": 0.0,
                    "error_rate": None,
                },
            ],
        }
    ),
    "readyz": _json(
        {
            "ready": True,
            "score": 90,
            "checks": [
                {"name": "database", "ok": True, "detail": "the database answers"},
                {"name": "schema", "ok": True, "detail": "schema at 0003"},
                {
                    "name": "daemon",
                    "ok": True,
                    "detail": "every daemon sent a heartbeat in the last 12 s (alert after 120 s)",
                },
                {
                    "name": "stuck_jobs",
                    "ok": False,
                    "detail": STUCK_ALERT["message"],
                    "points_lost": 10,
                },
            ],
            "reasons": [STUCK_ALERT["message"]],
            "alerts": [STUCK_ALERT],
        }
    ),
}
