"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when reachable),
settings pointing at temporary folders, the reference API server, and a Dagster instance.

PostgreSQL: tests use a throw-away database created for the session on the server named by
ETL_TEST_POSTGRES_URL (default postgresql://root@127.0.0.1:5432/test). When no server answers
they are skipped with the reason, unless ETL_REQUIRE_POSTGRES=1 (CI sets it), which fails them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from etl_assets import migrations
from etl_assets.config import Settings
from etl_assets.datasets.samples import corrupt, sales_frame, write_sales_csv
from etl_assets.db import create_engine, engine_for, temporary_postgres_database
from etl_assets.definitions import build_definitions
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.ledger import Job, Ledger
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.runtime.local_daemon import LocalDaemon
from etl_assets.schema import metadata

POSTGRES_ADMIN_URL = os.environ.get(
    "ETL_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("ETL_REQUIRE_POSTGRES") == "1"
SETTING_NAMES = [f.name.upper() for f in dataclasses.fields(Settings)]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's own settings."""
    for name in [*SETTING_NAMES, "DAGSTER_HOME", "DAGSTER_PG_URL"]:
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------ databases


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for the session; dropped at the end."""
    with postgres_database("etl_test") as url:
        engine = create_engine(url)
        migrations.upgrade(engine)
        engine.dispose()
        yield url


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new empty PostgreSQL database, dropped afterwards; skips (or, with
    ETL_REQUIRE_POSTGRES=1, fails) the test when no server answers."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_postgres_database(POSTGRES_ADMIN_URL, prefix))
        except sa.exc.OperationalError as exc:
            reason = f"no PostgreSQL server at {POSTGRES_ADMIN_URL}: {str(exc.orig).strip()}"
            if REQUIRE_POSTGRES:
                pytest.fail(f"ETL_REQUIRE_POSTGRES=1 but {reason}")
            pytest.skip(reason)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or the session's PostgreSQL database
    with every table emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'etl.db'}"
        engine = create_engine(url)
        migrations.upgrade(engine)
        engine.dispose()
        yield url
        return
    yield emptied(request.getfixturevalue("postgres_url"))


def emptied(url: str) -> str:
    """Empty every table of the database at `url`; returns the url."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database, for tests about behaviour that does not depend on dialect."""
    url = f"sqlite:///{tmp_path / 'etl.db'}"
    engine = create_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: sa.Engine) -> Ledger:
    """The ledger on the test database (3 attempts per job)."""
    return Ledger(engine, max_attempts=3)


# ------------------------------------------------------------------------------ platform


@pytest.fixture(scope="session")
def reference_api() -> Iterator[ReferenceApiServer]:
    """The reference FX and catalog APIs for the whole session."""
    with ReferenceApiServer() as server:
        yield server


@pytest.fixture
def api(reference_api: ReferenceApiServer) -> Iterator[ReferenceApiServer]:
    """The reference APIs with no faults and zeroed call counts."""
    reference_api.faults.clear()
    yield reference_api
    reference_api.faults.clear()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, api: ReferenceApiServer) -> Settings:
    """Settings for one test: its own database, folders and the reference APIs."""
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        fx_api_url=api.fx_url,
        catalog_api_url=api.catalog_url,
        inbox_settle_seconds=0.0,
        chunk_rows=1000,
        heartbeat_seconds=0,  # no heartbeat thread unless a test asks for one
        backoff_base_seconds=0.01,  # Dagster's step retries really sleep: keep them short
        backoff_jitter=0.0,
        jobs_per_run=1,  # one run per job; test_batch.py covers batch runs
    ).resolved()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance in a temporary DAGSTER_HOME."""
    with dg.instance_for_test() as instance:
        yield instance


# ------------------------------------------------------------------------------ pipeline


@dataclass
class Platform:
    """The code location on a test instance, with helpers to submit files and run jobs."""

    settings: Settings
    daemon: LocalDaemon
    ledger: Ledger
    tmp_path: Path

    def submit(self, name: str, rows: int = 60, *, every: int = 0, seed: int = 0) -> Job:
        frame = sales_frame(rows, seed=seed, order_prefix=Path(name).stem.upper())
        if every:
            corrupt(frame, every)
        return self.submit_file(write_sales_csv(self.tmp_path / "in" / name, frame))

    def submit_file(self, path: Path) -> Job:
        archive = source_archive(self.settings.staging_dir)
        return publish_file(self.ledger, archive, path, dataset="sales").job

    def run_all(self) -> list[dg.ExecuteInProcessResult]:
        return self.daemon.drain()

    def facts(self, job_id: str | None = None) -> int:
        query = "SELECT count(*) FROM sales_fact" + (" WHERE job_id = :j" if job_id else "")
        with self.ledger.engine.connect() as conn:
            return int(conn.execute(sa.text(query), {"j": job_id}).scalar_one())


@pytest.fixture
def platform(settings: Settings, instance: dg.DagsterInstance, tmp_path: Path) -> Platform:
    return platform_for(settings, instance, tmp_path)


@pytest.fixture
def platform_cli(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner for the `etl` command with the platform's database, folders and APIs."""
    for name, value in {
        "DATABASE_URL": platform.settings.database_url,
        "DATA_DIR": platform.settings.data_dir,
        "FX_API_URL": platform.settings.fx_api_url,
        "CATALOG_API_URL": platform.settings.catalog_api_url,
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def platform_for(settings: Settings, instance: dg.DagsterInstance, tmp_path: Path) -> Platform:
    """The code location built from `settings`, driven in process on `instance`."""
    defs = build_definitions(settings)
    ledger = Ledger(engine_for(settings), max_attempts=settings.retry_max_attempts)
    return Platform(settings, LocalDaemon(defs, instance), ledger, tmp_path)
