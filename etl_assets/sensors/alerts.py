"""The alerts sensor: evaluates the alert rules every ALERT_INTERVAL_SECONDS and notifies.

Each tick logs every firing alert; the notifier hears about an alert only when it starts
firing (and once more when it resolves), so a webhook is not called again every tick. The
rules firing at the last tick are kept in the sensor's cursor.
"""

import json

import dagster as dg

from etl_assets.config import Settings
from etl_assets.ops.alerts import Alert, Notifier, Thresholds, current_alerts, notifier_for
from etl_assets.resources.ledger import LedgerResource


def build_alerts_sensor(
    settings: Settings, notifier: Notifier | None = None
) -> dg.SensorDefinition:
    """The alerts sensor with the thresholds of `settings`, sending to `notifier` (default:
    the webhook of ALERT_WEBHOOK_URL when set, else the log)."""
    thresholds = Thresholds.from_settings(settings)
    send = notifier or notifier_for(settings)

    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=settings.alert_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Evaluates the alert rules (failure rate, retry exhaustion, stuck jobs, daemon "
            "heartbeat, pending queue), logs firing alerts and notifies when one starts or ends."
        ),
    )
    def alerts_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult:
        """Evaluate the rules; notify about alerts that started or stopped firing."""
        alerts = current_alerts(ledger.engine, thresholds, context.instance)
        before: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        now_firing = {alert.rule: alert.severity for alert in alerts}
        for alert in alerts:
            context.log.warning(f"alert {alert.rule} ({alert.severity}): {alert.message}")
            if alert.rule not in before:
                send.notify(alert, "firing")
        for rule in sorted(set(before) - set(now_firing)):
            context.log.info(f"alert {rule} resolved")
            send.notify(_resolved(rule, before[rule]), "resolved")
        summary = f"firing: {', '.join(sorted(now_firing))}" if now_firing else "no alert firing"
        return dg.SensorResult(
            skip_reason=dg.SkipReason(summary), cursor=json.dumps(now_firing, sort_keys=True)
        )

    return alerts_sensor


def _resolved(rule: str, severity: str) -> Alert:
    return Alert(rule, severity, f"{rule} no longer fires", 0, 0)
