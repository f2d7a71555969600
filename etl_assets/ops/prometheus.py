"""The ledger's metrics in the Prometheus text exposition format (version 0.0.4), for `/metrics`.

Written by `prometheus_client` from a per-scrape `CollectorRegistry` holding one custom
collector: every value is read from the ledger when scraped (the process keeps no state
between scrapes, so several API workers answer alike). The names and labels are listed in
docs/monitoring.md.

The two histograms, `etl_job_duration_seconds` and `etl_job_rows_loaded`, describe the jobs
completed in the last hour (at most RECENT_JOBS of them): a snapshot distribution, not an
ever-growing counter, so read them with `histogram_quantile(0.95, etl_job_duration_seconds_bucket)`
without `rate()`.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy.engine import Engine

from etl_assets.ops import read_model as rm
from etl_assets.ops.health import Health

# What generate_latest writes; prometheus_client's own CONTENT_TYPE_LATEST names a newer one.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTOGRAM_WINDOW_SECONDS = 3600
RECENT_JOBS = 1000  # the histograms' sample: one bounded index read per scrape
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
ROWS_BUCKETS = (100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0)


def recent_samples(engine: Engine, now: dt.datetime | None = None) -> list[rm.CompletedSample]:
    """The jobs the histograms describe: completed in the last hour, newest RECENT_JOBS."""
    return rm.recent_completions(
        engine, window_seconds=HISTOGRAM_WINDOW_SECONDS, limit=RECENT_JOBS, now=now
    )


def _histogram(
    name: str, help_text: str, values: Sequence[float], bounds: Sequence[float]
) -> HistogramMetricFamily:
    """A histogram family of `values`: cumulative counts per upper bound, then +Inf."""
    ordered = sorted(values)
    buckets = [(f"{b:g}", float(bisect.bisect_right(ordered, b))) for b in bounds]
    buckets.append(("+Inf", float(len(ordered))))
    return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=float(sum(ordered)))


class LedgerCollector:
    """The families of one scrape, from metrics (and health, samples) read for it."""

    def __init__(
        self,
        metrics: rm.Metrics,
        health: Health | None = None,
        samples: Sequence[rm.CompletedSample] = (),
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.samples = samples

    def collect(self) -> Iterator[Metric]:
        """Every family, in the order docs/monitoring.md lists them."""
        m = self.metrics
        window = str(m.window_seconds)
        jobs = GaugeMetricFamily("etl_jobs", "Jobs in the ledger by status.", labels=["status"])
        for status, count in sorted(m.counts_by_status.items()):
            jobs.add_metric([status], count)
        yield jobs
        pending = GaugeMetricFamily(
            "etl_jobs_pending",
            "Pending jobs by priority; due ones may start now.",
            labels=["priority", "state"],
        )
        for depth in m.queue_depth:
            pending.add_metric([str(depth.priority), "due"], depth.due)
            pending.add_metric([str(depth.priority), "waiting"], depth.pending - depth.due)
        yield pending
        yield _gauge(
            "etl_jobs_stuck", "Processing jobs without a recent heartbeat.", len(m.stuck_jobs)
        )
        yield _gauge("etl_job_retries", "Retries recorded over all jobs.", m.retry.total_retries)
        yield _gauge(
            "etl_jobs_retried", "Jobs that needed at least one retry.", m.retry.jobs_retried
        )
        yield _gauge("etl_job_retries_max", "Most retries of one job.", m.retry.max_retries)
        for name, help_text, value in [
            ("etl_jobs_completed_window", "Jobs completed in the window.", m.completed_in_window),
            (
                "etl_jobs_failed_window",
                "Jobs failed (dead-lettered) in the window.",
                m.failed_in_window,
            ),
            ("etl_job_failure_ratio", "Failed over finished jobs in the window.", m.failure_rate),
            (
                "etl_job_duration_seconds_avg",
                "Mean run time of the jobs completed in the window.",
                m.avg_duration_seconds,
            ),
            (
                "etl_rows_loaded_window",
                "Rows loaded by the jobs completed in the window.",
                m.rows_loaded_in_window,
            ),
        ]:
            family = GaugeMetricFamily(name, help_text, labels=["window_seconds"])
            if value is not None:  # no data (no job finished in the window): no sample, not 0
                family.add_metric([window], value)
            yield family
        yield _gauge(
            "etl_quarantined_rows_open", "Rows still in quarantine.", m.quarantined_rows_open
        )
        durations = [s.duration_seconds for s in self.samples if s.duration_seconds is not None]
        yield _histogram(
            "etl_job_duration_seconds",
            f"Run time of the last attempt of the jobs completed in the last hour "
            f"(newest {RECENT_JOBS}).",
            durations,
            DURATION_BUCKETS,
        )
        yield _histogram(
            "etl_job_rows_loaded",
            f"Rows loaded per job, of the jobs completed in the last hour (newest {RECENT_JOBS}).",
            [float(s.rows_loaded) for s in self.samples],
            ROWS_BUCKETS,
        )
        if self.health is not None:
            yield _gauge("etl_health_score", "Health score 0-100 (see /readyz).", self.health.score)
            yield _gauge("etl_ready", "1 when /readyz says ready.", int(self.health.ready))
            firing = GaugeMetricFamily(
                "etl_alert_firing",
                "1 for each alert rule firing now (see /readyz).",
                labels=["rule", "severity"],
            )
            for alert in self.health.alerts:
                firing.add_metric([alert.rule, alert.severity], 1)
            yield firing


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def render(
    metrics: rm.Metrics,
    health: Health | None = None,
    samples: Sequence[rm.CompletedSample] = (),
) -> str:
    """The metrics (and, if given, the health score and the histograms' samples) as
    Prometheus text, from a registry made for this scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(metrics, health, samples))
    return generate_latest(registry).decode()
