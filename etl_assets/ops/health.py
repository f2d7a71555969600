"""Readiness of the platform, for `/readyz` and the dashboard: checks, a 0-100 score, reasons.

Ready means the ops API can serve and jobs can move: the database answers, its schema is the
one this code needs, and (when a Dagster instance is configured through DAGSTER_HOME) every
daemon the instance needs has sent a heartbeat lately. Stuck jobs and a high failure rate do
not make the platform unready, but they lower its score and say why.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection, utcnow
from etl_assets.ledger.models import JobStatus
from etl_assets.ledger.schema import jobs
from etl_assets.ops.read_model import stuck_condition

logger = logging.getLogger(__name__)

# dagster-daemon beats every 30 s; four missed beats mean it is down or wedged.
DAEMON_HEARTBEAT_MAX_AGE_SECONDS = 120
FAILURE_RATE_WINDOW_SECONDS = 3600
FAILURE_RATE_THRESHOLD = 0.10
PENALTY = {"schema": 50, "daemon": 40, "stuck_jobs": 10, "failure_rate": 20}
MAX_STUCK_PENALTY = 30


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
    """Ready or not, a score from 0 (down) to 100 (all well), and why points were lost."""

    ready: bool
    score: int
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


InstanceFactory = Callable[[], Any]


def readiness(
    engine: Engine,
    *,
    stuck_after_seconds: int,
    instance_factory: InstanceFactory | None = None,
    now: dt.datetime | None = None,
) -> Health:
    """Run the checks. `instance_factory` opens the Dagster instance (default: from
    DAGSTER_HOME when it is set, else the daemon is not checked)."""
    now = now or utcnow()
    database = _check_database(engine)
    if not database.ok:
        return Health(False, 0, [database], [database.detail])
    checks = [
        database,
        _check_schema(engine),
        _check_daemon(instance_factory or _default_instance_factory(), now),
    ]
    if checks[1].ok:  # without the ledger's tables there are no jobs to look at
        checks += _check_jobs(engine, stuck_after_seconds, now)
    lost = sum(c.points_lost for c in checks)
    reasons = [c.detail for c in checks if c.ok is False]
    ready = all(c.ok is not False for c in checks if c.name in ("database", "schema", "daemon"))
    return Health(ready, max(0, 100 - lost), checks, reasons)


def _check_database(engine: Engine) -> Check:
    try:
        with read_connection(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        # The reason goes to the server log only: /readyz is open and must not show the URL.
        logger.warning("readiness: the database cannot be reached: %s", exc)
        return Check("database", False, "the database cannot be reached (see the API's log)")
    return Check("database", True, "the database answers")


def _check_schema(engine: Engine) -> Check:
    from etl_assets import migrations

    try:
        current, head = migrations.current_revision(engine), migrations.head_revision()
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("readiness: cannot read the schema revision: %s", exc)
        detail = "cannot read the schema revision: run `etl db upgrade`"
        return Check("schema", False, detail, PENALTY["schema"])
    if current != head:
        return Check(
            "schema",
            False,
            f"schema at {current or 'nothing'}, this code needs {head}: run `etl db upgrade`",
            PENALTY["schema"],
        )
    return Check("schema", True, f"schema at {head}")


def _default_instance_factory() -> InstanceFactory | None:
    if not os.environ.get("DAGSTER_HOME"):
        return None
    return _shared_instance


@functools.cache
def _shared_instance() -> Any:
    """DAGSTER_HOME's instance, opened once per process: each readiness check reuses it
    instead of opening new storage connections."""
    import dagster as dg

    return dg.DagsterInstance.get()


def _check_daemon(factory: InstanceFactory | None, now: dt.datetime) -> Check:
    if factory is None:
        return Check("daemon", None, "not checked: DAGSTER_HOME is not set")
    try:
        instance = factory()
        required = list(instance.get_required_daemon_types())
        beats = instance.get_daemon_heartbeats()
    except Exception as exc:  # noqa: BLE001 - any failure to read the instance is "not ready"
        logger.warning("readiness: cannot read the Dagster instance: %s", exc)
        detail = "cannot read the Dagster instance (see the API's log)"
        return Check("daemon", False, detail, PENALTY["daemon"])
    stale = []
    for daemon in required:
        beat = beats.get(daemon)
        age = None if beat is None else now.timestamp() - beat.timestamp
        if age is None or age > DAEMON_HEARTBEAT_MAX_AGE_SECONDS:
            stale.append(f"{daemon} ({'never' if age is None else f'{age:.0f} s ago'})")
    if stale:
        return Check(
            "daemon",
            False,
            f"no fresh dagster-daemon heartbeat for: {', '.join(stale)}; "
            "is `dagster-daemon run` up?",
            PENALTY["daemon"],
        )
    return Check("daemon", True, f"{len(required)} daemons sent a heartbeat lately")


def _check_jobs(engine: Engine, stuck_after_seconds: int, now: dt.datetime) -> tuple[Check, Check]:
    stale_before = now - dt.timedelta(seconds=stuck_after_seconds)
    since = now - dt.timedelta(seconds=FAILURE_RATE_WINDOW_SECONDS)
    finished = sa.select(jobs.c.status, sa.func.count().label("n")).where(
        sa.or_(
            sa.and_(jobs.c.status == JobStatus.COMPLETED.value, jobs.c.completed_at >= since),
            sa.and_(jobs.c.status == JobStatus.FAILED.value, jobs.c.updated_at >= since),
        )
    )
    with read_connection(engine) as conn:
        stuck_count = int(
            conn.execute(
                sa.select(sa.func.count()).where(stuck_condition(stale_before))
            ).scalar_one()
        )
        counts = {r.status: int(r.n) for r in conn.execute(finished.group_by(jobs.c.status))}
    stuck = Check(
        "stuck_jobs",
        stuck_count == 0,
        f"{stuck_count} processing job(s) without a heartbeat for {stuck_after_seconds} s",
        min(PENALTY["stuck_jobs"] * stuck_count, MAX_STUCK_PENALTY),
    )
    failed, done = counts.get("failed", 0), counts.get("completed", 0)
    rate = failed / (failed + done) if failed + done else 0.0
    failure = Check(
        "failure_rate",
        rate <= FAILURE_RATE_THRESHOLD,
        f"{rate:.0%} of the jobs that finished in the last hour failed "
        f"({failed} of {failed + done}; alert above {FAILURE_RATE_THRESHOLD:.0%})",
        PENALTY["failure_rate"] if rate > FAILURE_RATE_THRESHOLD else 0,
    )
    return stuck, failure
