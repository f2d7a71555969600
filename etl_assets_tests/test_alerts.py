"""Alert rules on a seeded ledger (each firing and not), the alerts sensor on a real instance,
and the webhook notifier against a local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._daemon.types import DaemonHeartbeat
from seed import seed_job

from etl_assets.config import Settings
from etl_assets.db import create_engine, utcnow
from etl_assets.ledger.schema import jobs
from etl_assets.ops.alerts import (
    Alert,
    Figures,
    LogNotifier,
    Thresholds,
    WebhookNotifier,
    current_alerts,
    daemon_heartbeat_age,
    daemon_heartbeat_ages,
    evaluate_alerts,
    ledger_figures,
    with_daemon_ages,
)
from etl_assets.ops.health import penalty, readiness
from etl_assets.resources.ledger import LedgerResource
from etl_assets.sensors.alerts import build_alerts_sensor

MINUTE = dt.timedelta(minutes=1)
THRESHOLDS = Thresholds(failure_rate=0.10, pending=3, stuck_after_seconds=300)


@pytest.fixture(autouse=True)
def _propagating_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """caplog listens on the root logger; the CLI's configure_logging may have cut ours off."""
    monkeypatch.setattr(logging.getLogger("etl_assets"), "propagate", True)


def rules(engine: sa.Engine, now: dt.datetime) -> set[str]:
    return {alert.rule for alert in current_alerts(engine, THRESHOLDS, now=now)}


def test_an_empty_ledger_fires_nothing(engine: sa.Engine) -> None:
    assert current_alerts(engine, THRESHOLDS) == []


def test_failure_rate_counts_only_the_last_hour(engine: sa.Engine) -> None:
    now = utcnow()
    for _ in range(9):
        seed_job(engine, "completed", now=now)
    seed_job(engine, "failed", now=now)
    assert ledger_figures(engine, 300, now).failure_rate == pytest.approx(0.10)
    assert "failure_rate" not in rules(engine, now)  # 10 % is not over 10 %

    seed_job(engine, "failed", now=now, age=3 * MINUTE, updated_at=now - 2 * MINUTE)
    [alert] = [a for a in current_alerts(engine, THRESHOLDS, now=now) if a.rule == "failure_rate"]
    assert (alert.severity, alert.value, alert.threshold) == ("critical", 2 / 11, 0.10)
    assert "2 of 11 jobs" in alert.message

    # Two hours later both failures are out of the window, and so are the completions.
    assert "failure_rate" not in rules(engine, now + 2 * dt.timedelta(hours=1))


def test_retry_exhaustion_fires_for_a_recent_dead_letter(engine: sa.Engine) -> None:
    now = utcnow()
    seed_job(engine, "failed", now=now, error_type="permanent")
    seed_job(
        engine, "failed", now=now, error_type="transient_exhausted",
        updated_at=now - 2 * dt.timedelta(hours=1),
    )  # fmt: skip
    assert "retry_exhaustion" not in rules(engine, now)
    seed_job(engine, "failed", now=now, error_type="transient_exhausted")
    [alert] = [
        a for a in current_alerts(engine, THRESHOLDS, now=now) if a.rule == "retry_exhaustion"
    ]
    assert alert.value == 1
    assert "etl retry --all-failed --error-type transient_exhausted" in alert.message


def test_stuck_jobs_are_processing_jobs_with_an_old_heartbeat(engine: sa.Engine) -> None:
    now = utcnow()
    seed_job(engine, "processing", now=now, last_heartbeat_at=now - MINUTE)
    # waiting for an in-run retry due soon: alive
    seed_job(
        engine, "processing", now=now, last_heartbeat_at=now - 10 * MINUTE,
        next_attempt_at=now + MINUTE,
    )  # fmt: skip
    assert "stuck_jobs" not in rules(engine, now)
    stuck = seed_job(engine, "processing", now=now, last_heartbeat_at=now - 6 * MINUTE)
    [alert] = [a for a in current_alerts(engine, THRESHOLDS, now=now) if a.rule == "stuck_jobs"]
    assert alert.value == 1
    assert stuck in alert.message


def test_pending_queue_over_the_threshold(engine: sa.Engine) -> None:
    now = utcnow()
    for _ in range(3):
        seed_job(engine, "pending", now=now)
    assert "pending_queue" not in rules(engine, now)
    seed_job(engine, "pending", now=now)
    [alert] = [a for a in current_alerts(engine, THRESHOLDS, now=now) if a.rule == "pending_queue"]
    assert (alert.value, alert.threshold, alert.severity) == (4, 3, "warning")


def test_daemon_heartbeat_from_the_instance(instance: dg.DagsterInstance) -> None:
    assert daemon_heartbeat_age(instance) == float("inf")  # no daemon ever ran
    beat_all_daemons(instance, time.time() - 30)
    age = daemon_heartbeat_age(instance)
    assert 30 <= age < 3600
    base = Figures(0, 0, 0, 0, ())
    assert evaluate_alerts(Figures(0, 0, 0, 0, (), age), THRESHOLDS) == []
    [alert] = evaluate_alerts(Figures(0, 0, 0, 0, (), float("inf")), THRESHOLDS)
    assert (alert.rule, alert.severity) == ("daemon_heartbeat", "critical")
    assert "never sent a heartbeat" in alert.message
    assert alert.value is None  # not inf: the alert goes out as JSON (webhook, /v1/metrics)
    json.dumps(alert.as_dict(), allow_nan=False)
    assert evaluate_alerts(base, THRESHOLDS) == []  # no instance looked at: no verdict


def test_the_daemon_alert_names_the_stale_daemons(instance: dg.DagsterInstance) -> None:
    required = sorted(instance.get_required_daemon_types())
    beat_all_daemons(instance, time.time() - 30)
    ages = daemon_heartbeat_ages(instance)
    assert sorted(ages) == required and all(30 <= a < 3600 for a in ages.values())
    assert evaluate_alerts(with_daemon_ages(Figures(0, 0, 0, 0, ()), ages), THRESHOLDS) == []
    stale = {**ages, required[0]: 400.0}
    [alert] = evaluate_alerts(with_daemon_ages(Figures(0, 0, 0, 0, ()), stale), THRESHOLDS)
    assert alert.message.startswith(
        f"no fresh heartbeat from the Dagster daemon(s) {required[0]} (400 s ago): "
    )
    assert alert.value == 400.0


def beat_all_daemons(instance: dg.DagsterInstance, timestamp: float) -> None:
    for kind in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(timestamp, kind, None, None))


# ------------------------------------------------------------------------------ the sensor


class Recorder:
    """A notifier that remembers what it was told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def notify(self, alert: Alert, state: str) -> None:
        self.sent.append((alert.rule, state))


def test_the_sensor_notifies_once_per_alert_and_when_it_resolves(
    settings: Settings, instance: dg.DagsterInstance, capfd: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine(settings.database_url)
    now = utcnow()
    dead = seed_job(engine, "failed", now=now, error_type="transient_exhausted")
    beat_all_daemons(instance, time.time())
    recorder = Recorder()
    sensor = build_alerts_sensor(settings, notifier=recorder)
    resources = {"ledger": LedgerResource(database_url=settings.database_url)}

    def tick(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, sensor_name="alerts_sensor"
        ) as context:
            result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    first = tick(None)
    assert recorder.sent == [("failure_rate", "firing"), ("retry_exhaustion", "firing")]
    assert json.loads(first.cursor or "") == {
        "failure_rate": "critical",
        "retry_exhaustion": "critical",
    }
    second = tick(first.cursor)
    assert len(recorder.sent) == 2  # still firing: logged, not sent again
    assert capfd.readouterr().err.count("alert retry_exhaustion (critical)") == 2  # each tick

    with engine.begin() as conn:  # an operator retried it
        conn.execute(sa.update(jobs).where(jobs.c.job_id == dead).values(status="pending"))
    third = tick(second.cursor)
    assert recorder.sent[2:] == [("failure_rate", "resolved"), ("retry_exhaustion", "resolved")]
    assert third.skip_reason is not None
    assert "no alert firing" in str(third.skip_reason.skip_message)
    engine.dispose()


def test_the_sensor_logs_through_the_log_notifier_by_default(
    settings: Settings, instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="etl_assets")
    sensor = build_alerts_sensor(settings)
    with dg.build_sensor_context(
        instance=instance,
        resources={"ledger": LedgerResource(database_url=settings.database_url)},
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert json.loads(result.cursor or "") == {"daemon_heartbeat": "critical"}
    assert any(
        r.name == "etl_assets.ops.alerts" and "alert daemon_heartbeat (critical)" in r.getMessage()
        for r in caplog.records
    )
    LogNotifier().notify(Alert("x", "warning", "m", 1, 0), "resolved")
    assert "alert resolved: x" in caplog.text


# ------------------------------------------------------------------------------ the webhook


class Hook(BaseHTTPRequestHandler):
    """Records JSON bodies; answers with the status the server was given."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hook() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    server.bodies = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_webhook_gets_the_alert_as_json(hook: HTTPServer) -> None:
    url = f"http://127.0.0.1:{hook.server_port}/hook?token=s3cret"
    alert = Alert("pending_queue", "warning", "600 jobs are pending", 600, 500)
    WebhookNotifier(url, timeout_seconds=5).notify(alert, "firing")
    [body] = hook.bodies  # type: ignore[attr-defined]
    assert body["state"] == "firing"
    assert {k: body[k] for k in ("rule", "severity", "value", "threshold")} == {
        "rule": "pending_queue",
        "severity": "warning",
        "value": 600,
        "threshold": 500,
    }


def test_a_failing_webhook_is_logged_not_raised(
    hook: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    hook.status = 500  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{hook.server_port}/hook?token=s3cret"
    alert = Alert("stuck_jobs", "warning", "m", 1, 0)
    WebhookNotifier(url).notify(alert, "firing")
    WebhookNotifier("http://127.0.0.1:9/hook?token=s3cret", timeout_seconds=1).notify(
        alert, "firing"
    )
    assert "alert stuck_jobs: webhook answered HTTP 500" in caplog.text
    assert "alert stuck_jobs: webhook not reached (ConnectionError)" in caplog.text
    assert "s3cret" not in caplog.text


# ------------------------------------------------------------------------------ health score


def test_the_health_score_is_the_firing_alerts(engine: sa.Engine) -> None:
    """/readyz's score and reasons come from the same rules and thresholds as the sensor."""
    now = utcnow()
    seed_job(engine, "failed", now=now, error_type="transient_exhausted")
    for _ in range(4):
        seed_job(engine, "pending", now=now)
    for age in (6, 7, 8, 9):
        seed_job(engine, "processing", now=now, last_heartbeat_at=now - age * MINUTE)
    fired = current_alerts(engine, THRESHOLDS, now=now)
    result = readiness(engine, thresholds=THRESHOLDS, instance_factory=None, now=now)
    assert result.alerts == fired
    assert [a.rule for a in fired] == [
        "failure_rate", "retry_exhaustion", "stuck_jobs", "pending_queue",
    ]  # fmt: skip
    assert result.reasons == [a.message for a in fired]
    assert [penalty(a) for a in fired] == [20, 10, 30, 10]  # 4 stuck jobs: capped at 30
    assert (result.ready, result.score) == (True, 100 - 20 - 10 - 30 - 10)
    assert penalty(Alert("new_rule", "critical", "m", 1, 0)) == 20  # by severity
