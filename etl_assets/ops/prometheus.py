"""The ledger's metrics in the Prometheus text exposition format (version 0.0.4), for `/metrics`.

Written by hand: a dozen gauges computed per scrape from `read_model.metrics` need no client
library or process-wide registry. Every value is a gauge, read from the ledger when scraped.
"""

from __future__ import annotations

from collections.abc import Iterable

from etl_assets.ops.health import Health
from etl_assets.ops.read_model import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float | int | None]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        if value is None:
            continue  # no data (e.g. no job finished in the window): no sample, not zero
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return lines


def render(metrics: Metrics, health: Health | None = None) -> str:
    """The metrics (and, if given, the health score) as Prometheus text."""
    window = {"window_seconds": str(metrics.window_seconds)}
    lines = [
        *_family(
            "etl_jobs",
            "Jobs in the ledger by status.",
            [({"status": s}, n) for s, n in sorted(metrics.counts_by_status.items())],
        ),
        *_family(
            "etl_jobs_pending",
            "Pending jobs by priority; due ones may start now.",
            [
                sample
                for d in metrics.queue_depth
                for sample in (
                    ({"priority": str(d.priority), "state": "due"}, d.due),
                    ({"priority": str(d.priority), "state": "waiting"}, d.pending - d.due),
                )
            ],
        ),
        *_family("etl_jobs_stuck", "Processing jobs without a recent heartbeat.",
                 [({}, len(metrics.stuck_jobs))]),
        *_family("etl_job_retries", "Retries recorded over all jobs.",
                 [({}, metrics.retry.total_retries)]),
        *_family("etl_jobs_retried", "Jobs that needed at least one retry.",
                 [({}, metrics.retry.jobs_retried)]),
        *_family("etl_job_retries_max", "Most retries of one job.",
                 [({}, metrics.retry.max_retries)]),
        *_family("etl_jobs_completed_window", "Jobs completed in the window.",
                 [(window, metrics.completed_in_window)]),
        *_family("etl_jobs_failed_window", "Jobs failed (dead-lettered) in the window.",
                 [(window, metrics.failed_in_window)]),
        *_family("etl_job_failure_ratio", "Failed over finished jobs in the window.",
                 [(window, metrics.failure_rate)]),
        *_family("etl_job_duration_seconds_avg",
                 "Mean run time of the jobs completed in the window.",
                 [(window, metrics.avg_duration_seconds)]),
        *_family("etl_rows_loaded_window", "Rows loaded by the jobs completed in the window.",
                 [(window, metrics.rows_loaded_in_window)]),
        *_family("etl_quarantined_rows_open", "Rows still in quarantine.",
                 [({}, metrics.quarantined_rows_open)]),
    ]  # fmt: skip
    if health is not None:
        lines += _family(
            "etl_health_score", "Health score 0-100 (see /readyz).", [({}, health.score)]
        )
        lines += _family("etl_ready", "1 when /readyz says ready.", [({}, int(health.ready))])
        lines += _family(
            "etl_alert_firing",
            "1 for each alert rule firing now (see /readyz).",
            [({"rule": a.rule, "severity": a.severity}, 1) for a in health.alerts],
        )
    return "\n".join(lines) + "\n"
