"""`etl doctor`: checks the platform's set-up and health and says what to fix.

Each check answers OK, WARN (works, but look at it), FAIL (something is broken) or SKIP (could
not be checked because an earlier check failed), with what it saw and, unless OK, what to do.
The checks, in order: configuration, database, migrations, FX API, catalog API, Dagster home,
Dagster daemon, stuck jobs, dead letters.
"""

from __future__ import annotations

import datetime as dt
import enum
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.config import Settings, mask_secret
from etl_assets.db import engine_for, read_connection
from etl_assets.ledger.models import JobStatus
from etl_assets.ledger.schema import jobs
from etl_assets.logs import parse_level
from etl_assets.ops import read_model as rm


class Status(enum.StrEnum):
    """How a check came out."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One check's verdict, what it saw, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON-ready values."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def run_checks(environ: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in order; a check whose prerequisite failed is SKIP."""
    config, settings = check_configuration(environ)
    if settings is None:
        later = ["database", "migrations", "FX API", "catalog API", "Dagster home"]
        return [config, *_skipped([*later, "Dagster daemon", *LEDGER_CHECKS], "configuration")]
    database, engine = check_database(settings)
    checks = [config, database]
    schema = check_migrations(engine, settings.migration_dirs) if engine is not None else None
    checks += [schema] if schema else _skipped(["migrations"], "database")
    timeout = settings.api_timeout_seconds
    checks += [
        check_api("FX API", settings.fx_api_url, "latest", settings.fx_api_token, timeout,
                  {"base": settings.reporting_currency}),
        check_api("catalog API", settings.catalog_api_url, "products",
                  settings.catalog_api_token, timeout, {"skus": "SKU-0001"}),
    ]  # fmt: skip
    checks += check_dagster(settings)
    if engine is None or schema is None or schema.status is Status.FAIL:
        checks += _skipped(LEDGER_CHECKS, "database" if engine is None else "migrations")
    else:
        checks += [check_stuck_jobs(engine, settings), check_dead_letters(engine)]
    return checks


LEDGER_CHECKS = ["stuck jobs", "dead letters"]


def _skipped(names: list[str], because: str) -> list[Check]:
    return [Check(name, Status.SKIP, f"not checked: the {because} check failed") for name in names]


# ------------------------------------------------------------------------------ checks


def check_configuration(env: Mapping[str, str] | None) -> tuple[Check, Settings | None]:
    """Every setting parses, and the data folders can be written."""
    try:
        settings = Settings.from_env(env)
        where = mask_secret("database_url", settings.database_url)
        parse_level(settings.log_level)
    except (ValueError, sa.exc.ArgumentError) as exc:
        fix = "correct the variable, or unset it to use the default"
        return Check("configuration", Status.FAIL, _first_line(exc), fix), None
    for name in ("staging_dir", "inbox_dir"):
        folder = Path(getattr(settings, name))
        problem = _unwritable(folder)
        if problem:
            return Check(
                "configuration",
                Status.FAIL,
                f"{name.upper()}={folder}: {problem}",
                f"create the folder or point {name.upper()} at one this user can write",
            ), settings
    if settings.database_url.startswith("sqlite"):
        return Check(
            "configuration",
            Status.WARN,
            f"settings parse; the ledger is the SQLite file {where}",
            "fine for a demo or one machine; set DATABASE_URL to PostgreSQL for production",
        ), settings
    return Check("configuration", Status.OK, f"settings parse; ledger at {where}"), settings


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unwritable(folder: Path) -> str:
    """Why `folder` cannot hold files ("" when it can; a missing one is created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return ""
    except OSError as exc:
        return exc.strerror or str(exc)


def check_database(settings: Settings) -> tuple[Check, Engine | None]:
    """The ledger database answers a query."""
    where = mask_secret("database_url", settings.database_url)
    try:
        engine = engine_for(settings)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.SQLAlchemyError, ImportError) as exc:  # ImportError: no driver installed
        orig = getattr(exc, "orig", None)
        first = _first_line(orig if orig is not None else exc)
        return Check(
            "database",
            Status.FAIL,
            f"cannot reach {where}: {first}",
            "check DATABASE_URL and that the server is running and accepts this user",
        ), None
    return Check("database", Status.OK, f"{where} answers"), engine


def check_migrations(engine: Engine, migration_dirs: Sequence[Path] = ()) -> Check:
    """The schema is at the code's head revision (and MIGRATIONS_DIRS')."""
    from etl_assets import migrations

    current = migrations.current_revision(engine)
    head = migrations.head_revision(migration_dirs)
    if current == head:
        return Check("migrations", Status.OK, f"schema at {head} (head)")
    if current is None:
        return Check(
            "migrations", Status.FAIL, "the database has no ledger tables", "run `etl db upgrade`"
        )
    return Check(
        "migrations",
        Status.FAIL,
        f"schema at {current}, code expects {head}",
        "run `etl db upgrade` (or deploy the code that matches the database)",
    )


def check_api(
    name: str, base_url: str, path: str, token: str, timeout: float, params: dict[str, str]
) -> Check:
    """One enrichment API answers a small real request the way the pipeline calls it."""
    url = f"{base_url.rstrip('/')}/{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(url, params=params, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return Check(
            name,
            Status.FAIL,
            f"{base_url} not reached ({type(exc).__name__})",
            "check the URL setting and that the service is up; jobs retry, then dead-letter",
        )
    code = response.status_code
    if code < 400:
        seconds = response.elapsed.total_seconds()
        return Check(name, Status.OK, f"{base_url} answered {code} in {seconds:.2f} s")
    if code in (401, 403):
        fix = "set the API's token (FX_API_TOKEN / CATALOG_API_TOKEN) to one it accepts"
    elif code >= 500 or code == 429:
        fix = "the service is failing or throttling: jobs retry with backoff; tell its owners"
    else:
        fix = "check the URL setting: it must point at the API's base (see the README)"
    return Check(
        name, Status.FAIL if code < 500 else Status.WARN, f"{base_url} answered HTTP {code}", fix
    )


def check_dagster(settings: Settings) -> list[Check]:
    """DAGSTER_HOME holds an instance, and its daemon's heartbeat is fresh."""
    home = settings.dagster_home
    if not home:
        return [
            Check(
                "Dagster home",
                Status.WARN,
                "DAGSTER_HOME is not set: `dagster dev` would keep runs in a temporary folder",
                "export DAGSTER_HOME=/path, then `etl dagster-home` (or use `make dev`)",
            ),
            Check("Dagster daemon", Status.SKIP, "not checked: no DAGSTER_HOME"),
        ]
    if not (Path(home) / "dagster.yaml").is_file():
        return [
            Check(
                "Dagster home",
                Status.WARN,
                f"{home} has no dagster.yaml: the run queue limits and run monitoring are off",
                "run `etl dagster-home`",
            ),
            _daemon_check(home, settings),
        ]
    return [Check("Dagster home", Status.OK, f"{home}/dagster.yaml"), _daemon_check(home, settings)]


def _daemon_check(home: str, settings: Settings) -> Check:
    import dagster as dg

    from etl_assets.ops.alerts import daemon_heartbeat_age

    try:
        with dg.DagsterInstance.from_config(home) as instance:
            age = daemon_heartbeat_age(instance)
    except Exception as exc:  # noqa: BLE001 - any failure to open the instance is the finding
        return Check(
            "Dagster daemon",
            Status.FAIL,
            f"cannot open the Dagster instance in {home}: {type(exc).__name__}: {exc}",
            "check dagster.yaml there (and DAGSTER_PG_URL if it uses PostgreSQL)",
        )
    if age <= settings.alert_daemon_stale_seconds:
        return Check("Dagster daemon", Status.OK, f"heartbeat {age:.0f} s ago")
    seen = "has never sent a heartbeat" if age == float("inf") else f"last beat {age:.0f} s ago"
    return Check(
        "Dagster daemon",
        Status.FAIL,
        f"the daemon {seen}: no sensor runs, so no job is dispatched, reaped or alerted on",
        "start it: `dagster-daemon run -w workspace.yaml` (or `make dev`)",
    )


def check_stuck_jobs(engine: Engine, settings: Settings, now: dt.datetime | None = None) -> Check:
    """No processing job has gone without a heartbeat for STUCK_AFTER_SECONDS."""
    stuck = rm.metrics(
        engine,
        stuck_after_seconds=settings.stuck_after_seconds,
        recent_failures=0,
        dagster_ui_url=None,
        now=now,
    ).stuck_jobs
    if not stuck:
        return Check("stuck jobs", Status.OK, "every processing job has a fresh heartbeat")
    ids = ", ".join(s.job_id for s in stuck[:5]) + (", ..." if len(stuck) > 5 else "")
    return Check(
        "stuck jobs",
        Status.WARN,
        f"{len(stuck)} processing job(s) without a heartbeat for over "
        f"{settings.stuck_after_seconds} s: {ids}",
        "the reaper takes them back within REAPER_INTERVAL_SECONDS if the daemon runs; "
        "`etl jobs show JOB_ID` shows the run; `etl cancel JOB_ID` stops one for good",
    )


def check_dead_letters(engine: Engine) -> Check:
    """No failed job is waiting for an operator."""
    stmt = (
        sa.select(jobs.c.error_type, sa.func.count().label("n"))
        .where(jobs.c.status == JobStatus.FAILED.value)
        .group_by(jobs.c.error_type)
        .order_by(jobs.c.error_type)
    )
    with read_connection(engine) as conn:
        by_type = {str(r.error_type): int(r.n) for r in conn.execute(stmt)}
    if not by_type:
        return Check("dead letters", Status.OK, "no failed jobs")
    total = sum(by_type.values())
    kinds = ", ".join(f"{n} {kind}" for kind, n in by_type.items())
    return Check(
        "dead letters",
        Status.WARN,
        f"{total} failed job(s) wait for an operator ({kinds})",
        "`etl jobs list --status failed` says why; fix the cause, then `etl retry JOB_ID` "
        "(or `etl retry --all-failed --error-type transient_exhausted`)",
    )


def summary(checks: list[Check]) -> dict[str, Any]:
    """`{"ok": no FAIL, "checks": [...]}` for --json."""
    return {
        "ok": all(c.status is not Status.FAIL for c in checks),
        "checks": [c.as_dict() for c in checks],
    }
