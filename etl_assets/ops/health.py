"""Readiness of the platform, for `/readyz` and the dashboard: checks, a 0-100 score, reasons.

Ready means the ops API can serve and jobs can move: the database answers, its schema is the
one this code needs, and (when a Dagster instance is configured through DAGSTER_HOME) no
`daemon_heartbeat` alert fires. The other alert rules of `etl_assets.ops.alerts` (failure rate,
retry exhaustion, stuck jobs, pending queue) do not make the platform unready, but each one
firing lowers the score, and its message is one of the reasons. The rules and their
thresholds (the ALERT_* settings, STUCK_AFTER_SECONDS) are the alerts module's: this module
only decides what each firing rule costs.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection, utcnow
from etl_assets.ops import alerts
from etl_assets.ops import read_model as rm
from etl_assets.ops.alerts import Alert, Thresholds

logger = logging.getLogger(__name__)

SCHEMA_PENALTY = 50
# Points a firing alert takes off the score, by rule; stuck_jobs costs this much per stuck
# job, up to MAX_STUCK_PENALTY. A rule missing here costs its severity's points.
ALERT_PENALTY = {
    alerts.DAEMON_HEARTBEAT: 40,
    "failure_rate": 20,
    "retry_exhaustion": 10,
    "stuck_jobs": 10,
    "pending_queue": 10,
}
SEVERITY_PENALTY = {alerts.CRITICAL: 20, alerts.WARNING: 10}
MAX_STUCK_PENALTY = 30
GATES = ("database", "schema", "daemon")  # the checks that make the platform unready


@dataclass(frozen=True)
class Check:
    """One readiness check. `ok` None means it was not run (not configured); `points_lost`
    is what it takes off the score."""

    name: str
    ok: bool | None
    detail: str
    points_lost: int = 0


@dataclass(frozen=True)
class Health:
    """Ready or not, a score from 0 (down) to 100 (all well), why points were lost, and the
    alerts firing now."""

    ready: bool
    score: int
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


InstanceFactory = Callable[[], Any]


def readiness(
    engine: Engine,
    *,
    thresholds: Thresholds,
    instance_factory: InstanceFactory | None = None,
    now: dt.datetime | None = None,
    migration_dirs: Sequence[Path] = (),
    metrics: rm.Metrics | None = None,
) -> Health:
    """Run the checks and evaluate the alert rules. `instance_factory` opens the Dagster
    instance (default: from DAGSTER_HOME when it is set, else the daemon is not checked);
    `metrics` read for the same request are reused (`alerts.ledger_figures`)."""
    now = now or utcnow()
    # The Dagster instance first: reading it holds no connection of the ledger's pool.
    factory = instance_factory or default_instance_factory()
    ages, unreadable = _daemon_ages(factory, now)
    with ExitStack() as stack:
        # One connection for the database check, the schema's revision and the ledger's
        # figures: each checkout costs a pre-ping and a rollback, a third of /readyz. The
        # checkout is the check: the pool pings a kept connection, or opens a new one.
        try:
            conn = stack.enter_context(read_connection(engine))
        except sa.exc.SQLAlchemyError as exc:
            # The reason goes to the server log only: /readyz is open and must not show it.
            logger.warning("readiness: the database cannot be reached: %s", exc)
            database = Check(
                "database", False, "the database cannot be reached (see the API's log)"
            )
            return Health(False, 0, [database], [database.detail])
        database = Check("database", True, "the database answers")
        schema = _check_schema(engine, conn, migration_dirs)
        # Without the ledger's tables there are no jobs to look at: only the daemon rule runs.
        figures = (
            alerts.ledger_figures(
                engine, thresholds.stuck_after_seconds, now, metrics=metrics, conn=conn
            )
            if schema.ok
            else alerts.NO_LEDGER_FIGURES
        )
    if ages is not None:
        figures = alerts.with_daemon_ages(figures, ages)
    fired = alerts.evaluate_alerts(figures, thresholds)
    checks = [
        database,
        schema,
        _daemon_check(factory, unreadable, figures, fired, thresholds),
        *(_alert_check(a) for a in fired if a.rule != alerts.DAEMON_HEARTBEAT),
    ]
    lost = sum(c.points_lost for c in checks)
    reasons = [c.detail for c in checks if c.ok is False]
    ready = all(c.ok is not False for c in checks if c.name in GATES)
    return Health(ready, max(0, 100 - lost), checks, reasons, fired)


def firing_alerts(
    engine: Engine,
    thresholds: Thresholds,
    instance_factory: InstanceFactory | None = None,
    now: dt.datetime | None = None,
    metrics: rm.Metrics | None = None,
) -> list[Alert]:
    """The alerts firing now, the daemon rule included when a Dagster instance is configured
    and readable (when it is not, /readyz says so; the other rules still answer). `metrics`
    read for the same request are reused (`alerts.ledger_figures`)."""
    now = now or utcnow()
    ages, _ = _daemon_ages(instance_factory or default_instance_factory(), now)
    figures = alerts.ledger_figures(engine, thresholds.stuck_after_seconds, now, metrics=metrics)
    if ages is not None:
        figures = alerts.with_daemon_ages(figures, ages)
    return alerts.evaluate_alerts(figures, thresholds)


def penalty(alert: Alert) -> int:
    """The points a firing alert takes off the health score."""
    points = ALERT_PENALTY.get(alert.rule, SEVERITY_PENALTY.get(alert.severity, 10))
    if alert.rule == "stuck_jobs":
        return min(points * max(1, int(alert.value or 1)), MAX_STUCK_PENALTY)
    return points


def _alert_check(alert: Alert) -> Check:
    return Check(alert.rule, False, alert.message, penalty(alert))


def _check_schema(engine: Engine, conn: sa.Connection, migration_dirs: Sequence[Path]) -> Check:
    from etl_assets import migrations

    try:
        current = _current_revision(conn) or migrations.current_revision(engine)
        head = _head_revision(tuple(migration_dirs))
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("readiness: cannot read the schema revision: %s", exc)
        detail = "cannot read the schema revision: run `etl db upgrade`"
        return Check("schema", False, detail, SCHEMA_PENALTY)
    if current != head:
        return Check(
            "schema",
            False,
            f"schema at {current or 'nothing'}, this code needs {head}: run `etl db upgrade`",
            SCHEMA_PENALTY,
        )
    return Check("schema", True, f"schema at {head}")


def _current_revision(conn: sa.Connection) -> str | None:
    """The database's revision read straight from alembic's table (one tiny read, where
    alembic's MigrationContext first inspects the catalog); None when it cannot be read that
    way (never migrated), for alembic's own answer to decide. A failed read is rolled
    back, so `conn` stays usable (PostgreSQL refuses anything else in a failed transaction)."""
    try:
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
        heads: list[str] = list(rows.scalars())
        return ",".join(sorted(heads)) or None
    except sa.exc.DBAPIError:
        conn.rollback()
        return None


@functools.cache
def _head_revision(migration_dirs: tuple[Path, ...]) -> str:
    """The revision this code needs, read from the migration scripts once per process: they
    do not change under a running API, and parsing them costs more than the rest of /readyz."""
    from etl_assets import migrations

    return migrations.head_revision(migration_dirs)


def default_instance_factory() -> InstanceFactory | None:
    """What opens DAGSTER_HOME's instance, or None when DAGSTER_HOME is not set."""
    from etl_assets.config import Settings

    home = Settings.from_env().dagster_home
    if not home:
        return None
    return functools.partial(_shared_instance, home)


@functools.cache
def _shared_instance(home: str) -> Any:
    """The instance in `home`, opened once per process: each readiness check reuses it
    instead of opening new storage connections."""
    import dagster as dg

    return dg.DagsterInstance.from_config(home)


def _daemon_ages(
    factory: InstanceFactory | None, now: dt.datetime
) -> tuple[dict[str, float] | None, bool]:
    """(heartbeat age of each required daemon, or None when there is no instance to read;
    whether opening or reading the instance failed)."""
    if factory is None:
        return None, False
    try:
        return alerts.daemon_heartbeat_ages(factory(), now), False
    except Exception as exc:  # noqa: BLE001 - any failure to read the instance is "not ready"
        logger.warning("readiness: cannot read the Dagster instance: %s", exc)
        return None, True


def _daemon_check(
    factory: InstanceFactory | None,
    unreadable: bool,
    figures: alerts.Figures,
    fired: list[Alert],
    thresholds: Thresholds,
) -> Check:
    if factory is None:
        return Check("daemon", None, "not checked: DAGSTER_HOME is not set")
    points = ALERT_PENALTY[alerts.DAEMON_HEARTBEAT]
    if unreadable:
        detail = "cannot read the Dagster instance (see the API's log)"
        return Check("daemon", False, detail, points)
    stale = [a for a in fired if a.rule == alerts.DAEMON_HEARTBEAT]
    if stale:
        return Check("daemon", False, stale[0].message, penalty(stale[0]))
    return Check(
        "daemon",
        True,
        f"every daemon sent a heartbeat in the last {figures.daemon_heartbeat_age or 0:.0f} s "
        f"(alert after {thresholds.daemon_stale_seconds:.0f} s)",
    )
