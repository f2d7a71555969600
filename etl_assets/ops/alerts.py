"""Alert rules over the jobs ledger and the Dagster daemon, and where firing alerts are sent.

The rules are a pure function of a few figures (`evaluate_alerts`), so the alerts sensor, the
ops API (`/v1/metrics`, `/readyz` and its health score, `/metrics`), `etl jobs stats` and
`etl doctor` judge the same numbers the same way:

| rule | fires when | severity |
|---|---|---|
| `failure_rate` | failed / finished jobs in the last hour > `ALERT_FAILURE_RATE` | critical |
| `retry_exhaustion` | a job was dead-lettered (`transient_exhausted`) in the last hour | critical |
| `stuck_jobs` | a processing job's heartbeat is older than `STUCK_AFTER_SECONDS` | warning |
| `daemon_heartbeat` | a daemon heartbeat is older than `ALERT_DAEMON_STALE_SECONDS` | critical |
| `pending_queue` | pending jobs > `ALERT_PENDING_THRESHOLD` | warning |

Notifiers: `LogNotifier` (the default) logs; `WebhookNotifier` POSTs the alert as JSON to
`ALERT_WEBHOOK_URL`, and a failed POST is logged, never raised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.config import Settings
from etl_assets.db import read_connection, utcnow
from etl_assets.ops import read_model as rm

if TYPE_CHECKING:  # dagster is only needed when an instance is given
    import dagster as dg

logger = logging.getLogger(__name__)

WINDOW = dt.timedelta(hours=1)
CRITICAL, WARNING = "critical", "warning"
DAEMON_HEARTBEAT = "daemon_heartbeat"
STUCK_IDS_SHOWN = 5


@dataclass(frozen=True)
class Alert:
    """One firing alert: which rule, how bad, what it says, the figure and its threshold.
    `value` is None when the figure is unbounded (a daemon that never sent a heartbeat): JSON
    has no infinity."""

    rule: str
    severity: str
    message: str
    value: float | None
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Where each rule fires; `from_settings` reads them from the ALERT_* settings."""

    failure_rate: float = 0.10
    pending: int = 500
    stuck_after_seconds: float = 300.0
    daemon_stale_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The thresholds the settings give."""
        return cls(
            failure_rate=settings.alert_failure_rate,
            pending=settings.alert_pending_threshold,
            stuck_after_seconds=settings.stuck_after_seconds,
            daemon_stale_seconds=settings.alert_daemon_stale_seconds,
        )


@dataclass(frozen=True)
class Figures:
    """What the rules look at, read from the ledger (and the instance) at one moment."""

    finished_last_hour: int
    failed_last_hour: int
    dead_lettered_last_hour: int
    pending: int
    stuck_job_ids: tuple[str, ...]
    # Age in seconds of the stalest required daemon heartbeat (inf: one never beat);
    # None when no Dagster instance was looked at.
    daemon_heartbeat_age: float | None = None
    # (daemon type, age) of each required daemon, so an alert can name the stale ones.
    daemon_ages: tuple[tuple[str, float], ...] = ()

    @property
    def failure_rate(self) -> float:
        """Failed over finished (completed + failed) jobs in the last hour; 0 with none."""
        return self.failed_last_hour / self.finished_last_hour if self.finished_last_hour else 0.0


# What the ledger rules see when the ledger cannot be read (e.g. not migrated): nothing fires.
NO_LEDGER_FIGURES = Figures(0, 0, 0, 0, ())


def evaluate_alerts(figures: Figures, thresholds: Thresholds) -> list[Alert]:
    """The alerts `figures` fire under `thresholds` (pure: no I/O)."""
    alerts = []
    rate = figures.failure_rate
    if figures.finished_last_hour and rate > thresholds.failure_rate:
        alerts.append(
            Alert(
                "failure_rate",
                CRITICAL,
                f"{figures.failed_last_hour} of {figures.finished_last_hour} jobs finished in "
                f"the last hour failed ({rate:.0%} > {thresholds.failure_rate:.0%}): "
                "`etl jobs list --status failed` says why",
                rate,
                thresholds.failure_rate,
            )
        )
    if figures.dead_lettered_last_hour:
        alerts.append(
            Alert(
                "retry_exhaustion",
                CRITICAL,
                f"{figures.dead_lettered_last_hour} job(s) ran out of attempts in the last hour "
                "(transient_exhausted): once the cause is fixed, "
                "`etl retry --all-failed --error-type transient_exhausted`",
                figures.dead_lettered_last_hour,
                0,
            )
        )
    if figures.stuck_job_ids:
        alerts.append(_stuck_alert(figures.stuck_job_ids, thresholds))
    age = figures.daemon_heartbeat_age
    if age is not None and age > thresholds.daemon_stale_seconds:
        alerts.append(_daemon_alert(figures, age, thresholds))
    if figures.pending > thresholds.pending:
        alerts.append(
            Alert(
                "pending_queue",
                WARNING,
                f"{figures.pending} jobs are pending (> {thresholds.pending}): the workers do "
                "not keep up; check `etl watch` and MAX_CONCURRENT_JOBS",
                figures.pending,
                thresholds.pending,
            )
        )
    return alerts


def _daemon_alert(figures: Figures, age: float, thresholds: Thresholds) -> Alert:
    never = age == float("inf")
    stale = [
        f"{kind} ({'never' if a == float('inf') else f'{a:.0f} s ago'})"
        for kind, a in figures.daemon_ages
        if a > thresholds.daemon_stale_seconds
    ]
    if stale:
        which = f"no fresh heartbeat from the Dagster daemon(s) {', '.join(stale)}"
    else:
        which = "a Dagster daemon " + (
            "never sent a heartbeat" if never else f"last beat {age:.0f} s ago"
        )
    return Alert(
        DAEMON_HEARTBEAT,
        CRITICAL,
        f"{which}: no job is dispatched or reaped until `dagster-daemon run` is running again",
        None if never else age,
        thresholds.daemon_stale_seconds,
    )


def _stuck_alert(job_ids: Sequence[str], thresholds: Thresholds) -> Alert:
    shown = ", ".join(job_ids[:STUCK_IDS_SHOWN]) + (
        ", ..." if len(job_ids) > STUCK_IDS_SHOWN else ""
    )
    return Alert(
        "stuck_jobs",
        WARNING,
        f"{len(job_ids)} processing job(s) without a heartbeat for more than "
        f"{thresholds.stuck_after_seconds:.0f} s ({shown}): the reaper takes them back unless "
        "their run is still queued; is the daemon running?",
        len(job_ids),
        0,
    )


# ------------------------------------------------------------------------------ figures


def ledger_figures(
    engine: Engine,
    stuck_after_seconds: float,
    now: dt.datetime | None = None,
    *,
    metrics: rm.Metrics | None = None,
    conn: sa.Connection | None = None,
) -> Figures:
    """Read the figures of the ledger rules (everything but the daemon heartbeat).

    `metrics`, when the caller has read them for this request already, are reused so each
    figure is read once: over the last hour they are all the rules need, and over another
    window they carry the hour's three finished counts (`finished_last_hour`; their pending
    and stuck jobs do not depend on the window). Without them, the hour's metrics are read.
    `conn`, a connection the caller holds, is read on instead of a new one from `engine`.
    """
    stuck_after = int(stuck_after_seconds)
    if metrics is not None and metrics.stuck_after_seconds == stuck_after:
        hour = _finished_last_hour(metrics, now)
        if hour is not None:  # everything is read already: no connection at all
            return _figures(metrics, hour)
    if conn is not None:
        return _ledger_figures(conn, stuck_after, now, metrics)
    with read_connection(engine) as own:
        return _ledger_figures(own, stuck_after, now, metrics)


def _finished_last_hour(
    metrics: rm.Metrics, now: dt.datetime | None
) -> tuple[int, int, int] | None:
    """(completed, failed, dead-lettered) over the hour before `now` if `metrics` hold them."""
    if metrics.window_seconds == int(WINDOW.total_seconds()):
        return (
            metrics.completed_in_window,
            metrics.failed_in_window,
            metrics.dead_lettered_in_window,
        )
    if now in (None, metrics.generated_at):
        return metrics.finished_last_hour
    return None


def _ledger_figures(
    conn: sa.Connection, stuck_after: int, now: dt.datetime | None, metrics: rm.Metrics | None
) -> Figures:
    if metrics is None or metrics.stuck_after_seconds != stuck_after:
        metrics = rm.read_metrics(
            conn,
            stuck_after_seconds=stuck_after,
            window_seconds=int(WINDOW.total_seconds()),
            recent_failures=0,
            dagster_ui_url=None,
            now=now,
        )
    hour = _finished_last_hour(metrics, now)
    if hour is None:
        hour = rm.finished_in_window(conn, (now or metrics.generated_at) - WINDOW)
    return _figures(metrics, hour)


def _figures(metrics: rm.Metrics, hour: tuple[int, int, int]) -> Figures:
    completed, failed, dead_lettered = hour
    return Figures(
        finished_last_hour=completed + failed,
        failed_last_hour=failed,
        dead_lettered_last_hour=dead_lettered,
        pending=metrics.pending_total,
        stuck_job_ids=tuple(job.job_id for job in metrics.stuck_jobs),
    )


def daemon_heartbeat_ages(
    instance: dg.DagsterInstance, now: dt.datetime | None = None
) -> dict[str, float]:
    """Seconds since the last heartbeat of each daemon the instance requires (inf when it
    never beat; empty when it requires none, e.g. an ephemeral instance)."""
    required = instance.get_required_daemon_types()
    if not required:
        return {}
    beats = instance.get_daemon_heartbeats()
    stamp = (now or utcnow()).timestamp()
    return {
        kind: max(0.0, stamp - beats[kind].timestamp) if kind in beats else float("inf")
        for kind in required
    }


def daemon_heartbeat_age(instance: dg.DagsterInstance, now: dt.datetime | None = None) -> float:
    """Seconds since the stalest heartbeat of the daemons the instance requires (inf when one
    never beat; 0 when it requires none)."""
    return max(daemon_heartbeat_ages(instance, now).values(), default=0.0)


def with_daemon_ages(figures: Figures, ages: dict[str, float]) -> Figures:
    """`figures` with the daemon heartbeat ages of `daemon_heartbeat_ages` filled in."""
    return dataclasses.replace(
        figures,
        daemon_heartbeat_age=max(ages.values(), default=0.0),
        daemon_ages=tuple(sorted(ages.items())),
    )


def current_alerts(
    engine: Engine,
    thresholds: Thresholds,
    instance: dg.DagsterInstance | None = None,
    now: dt.datetime | None = None,
    metrics: rm.Metrics | None = None,
) -> list[Alert]:
    """Read the figures (reusing `metrics` read for this request, see `ledger_figures`) and
    evaluate the rules (the daemon rule only with an instance)."""
    now = now or utcnow()
    figures = ledger_figures(engine, thresholds.stuck_after_seconds, now, metrics=metrics)
    if instance is not None:
        figures = with_daemon_ages(figures, daemon_heartbeat_ages(instance, now))
    return evaluate_alerts(figures, thresholds)


# ------------------------------------------------------------------------------ notifiers


class Notifier(Protocol):
    """Somewhere alerts go when they start firing and when they resolve."""

    def notify(self, alert: Alert, state: str) -> None:
        """Send `alert`; `state` is "firing" or "resolved". Must not raise."""


class LogNotifier:
    """Logs each alert on the `etl_assets.ops.alerts` logger (the default notifier)."""

    def notify(self, alert: Alert, state: str) -> None:
        """Log the alert: an error when critical and firing, else a warning or info."""
        if state == "resolved":
            logger.info("alert resolved: %s", alert.rule)
            return
        level = logging.ERROR if alert.severity == CRITICAL else logging.WARNING
        logger.log(level, "alert %s (%s): %s", alert.rule, alert.severity, alert.message)


class WebhookNotifier:
    """POSTs each alert as JSON to a URL (Slack-style incoming webhooks, Alertmanager relays).

    A webhook that is down or slow must not stop the alerts sensor: failures are logged
    (without the URL, which is a secret) and the alert is not raised.
    """

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds

    def notify(self, alert: Alert, state: str) -> None:
        """POST `{"state", "rule", "severity", "message", "value", "threshold", "at"}`."""
        body = {"state": state, **alert.as_dict(), "at": utcnow().isoformat()}
        try:
            response = requests.post(self.url, json=body, timeout=self.timeout_seconds)
            response.raise_for_status()
        except requests.HTTPError as exc:
            logger.error("alert %s: webhook answered HTTP %s", alert.rule, exc.response.status_code)
        except requests.RequestException as exc:
            logger.error("alert %s: webhook not reached (%s)", alert.rule, type(exc).__name__)


def notifier_for(settings: Settings) -> Notifier:
    """A webhook notifier when ALERT_WEBHOOK_URL is set, else the log notifier."""
    if settings.alert_webhook_url:
        return WebhookNotifier(settings.alert_webhook_url, settings.api_timeout_seconds)
    return LogNotifier()
