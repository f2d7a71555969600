"""`etl jobs stats`: the ops read model's metrics and the alerts firing, as titled tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from etl_assets.ops import read_model as rm
from etl_assets.ops.alerts import Alert

# (title, columns, rows); with no columns, each row's one cell is printed as a line.
Section = tuple[str, Sequence[str], list[list[Any]]]


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def sections(m: rm.Metrics, alerts: Sequence[Alert]) -> list[Section]:
    """Everything `etl jobs stats` prints, in order."""
    hours = m.window_seconds // 3600
    avg = "-" if m.avg_duration_seconds is None else f"{m.avg_duration_seconds:.1f} s"
    rates = f"failure rate {_pct(m.failure_rate)} (all time {_pct(m.failure_rate_all_time)})"
    r = m.retry
    return [
        ("jobs by status", ("status", "jobs"), [[s, n] for s, n in m.counts_by_status.items()]),
        (
            f"last {hours} h",
            (),
            [
                [f"completed {m.completed_in_window}, failed {m.failed_in_window}, {rates}"],
                [f"average duration {avg}, rows loaded {m.rows_loaded_in_window}"],
                [
                    f"retries: {r.jobs_retried} job(s) retried, {r.total_retries} in all, "
                    f"{r.avg_retries_per_job} per job, at most {r.max_retries}"
                ],
                [f"quarantined rows waiting: {m.quarantined_rows_open}"],
            ],
        ),
        (
            f"queue depth by priority ({m.pending_total} pending)",
            ("priority", "pending", "due now"),
            [[d.priority, d.pending, d.due] for d in m.queue_depth],
        ),
        (
            f"stuck jobs (no heartbeat for {m.stuck_after_seconds} s)",
            ("job_id", "title", "attempts", "heartbeat_age_s", "run_id"),
            [
                [s.job_id, s.title, s.attempts, round(s.heartbeat_age_seconds), s.run_id or "-"]
                for s in m.stuck_jobs
            ],
        ),
        (
            "recent failures",
            ("job_id", "failed_at", "error_type", "error_message"),
            [
                [
                    f.job_id,
                    f"{f.failed_at:%Y-%m-%d %H:%M:%S}",
                    f.error_type or "-",
                    _short(f.error_message),
                ]
                for f in m.recent_failures
            ],
        ),
        (
            "alerts firing",
            ("rule", "severity", "message"),
            [[a.rule, a.severity, a.message] for a in alerts],
        ),
    ]


def _short(text: str | None, width: int = 70) -> str:
    if not text:
        return "-"
    return text if len(text) <= width else text[: width - 3] + "..."
