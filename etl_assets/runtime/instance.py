"""Writes DAGSTER_HOME/dagster.yaml from the repository's dagster.yaml and the settings.

Dagster reads some instance settings only as literal numbers (the run queue limit, run
monitoring's max runtime), so they are filled in here from MAX_CONCURRENT_JOBS and
JOB_TIMEOUT_MINUTES. When DAGSTER_PG_URL is set, Dagster's own storage moves to PostgreSQL;
when CELERY_BROKER_URL is set, runs are launched on the Celery run workers (`etl worker`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from etl_assets.config import Settings


def instance_config(
    template: Mapping[str, Any], settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The dagster.yaml content for `settings`, starting from `template` (`environ`: the
    environment to read DAGSTER_PG_URL from instead of the settings')."""
    pg_url = settings.dagster_pg_url if environ is None else environ.get("DAGSTER_PG_URL", "")
    config: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(template)))  # deep copy
    config.setdefault("concurrency", {}).setdefault("runs", {})["max_concurrent_runs"] = (
        settings.max_concurrent_jobs
    )
    config.setdefault("run_monitoring", {})["max_runtime_seconds"] = settings.job_timeout_seconds
    if pg_url:
        check_dagster_pg_url(pg_url)
        config["storage"] = {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    if settings.celery_broker_url:
        # Warm run workers (`etl worker`): runs start in an already-loaded process.
        config["run_launcher"] = {
            "module": "etl_assets.runtime.celery_launcher",  # dagster-celery's, see the module
            "class": "CeleryRunLauncher",
            "config": {
                "broker": {"env": "CELERY_BROKER_URL"},
                "backend": settings.celery_result_backend,
                "default_queue": settings.celery_queue,
            },
        }
    return config


def check_dagster_pg_url(url: str) -> None:
    """Refuse a DAGSTER_PG_URL without the psycopg2 driver: SQLAlchemy 2.1 reads a bare
    `postgresql://` as psycopg 3, which is not installed, and every Dagster process would fail
    to start with `No module named 'psycopg'`."""
    scheme = url.split("://", 1)[0]
    if scheme in {"postgres", "postgresql"}:
        raise ValueError(
            f"DAGSTER_PG_URL must name the psycopg2 driver: write postgresql+psycopg2://"
            f"{url.split('://', 1)[-1].split('@')[-1]} (with your user and password)"
        )


def initialize_pools(home: Path) -> list[str]:
    """Create the API pools' concurrency limits in the instance's storage now, at their
    default limit; returns the pools. Dagster would create each on its first use, but two
    runs starting together on PostgreSQL storage can both try, and the loser's run fails
    (UniqueViolation on concurrency_limits). Needs the instance's storage to be reachable."""
    import dagster as dg

    from etl_assets.datasets import all_datasets

    pools = sorted({e.concurrency_pool for d in all_datasets() for e in d.enrichments})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for pool in pools:
            instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
    return pools


def write_dagster_home(
    home: Path, template_path: Path, settings: Settings, environ: Mapping[str, str] | None = None
) -> Path:
    """Create `home` with its dagster.yaml; returns the file written."""
    template = yaml.safe_load(template_path.read_text()) or {}
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    config = instance_config(template, settings, environ)
    header = f"# Written by `etl dagster-home` from {template_path.name}; edit that file instead.\n"
    target.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return target
