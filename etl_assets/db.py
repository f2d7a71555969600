"""The shared SQL plumbing: one MetaData for ledger and warehouse, engines, portable types.

The ledger and the warehouse live in one database on purpose (a job's last load and its move
to `completed` commit together), so they share this MetaData and these engines.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url

from etl_assets.config import Settings

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC: the only clock the ledger uses."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and read back timezone-aware on SQLite and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the ledger; use utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# JSON on SQLite, JSONB on PostgreSQL (indexable, compact).
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_engines: dict[tuple[str, int, int, int], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(
    url: str, pool_size: int = 5, max_overflow: int = 5, pool_recycle_seconds: int = 1800
) -> Engine:
    """The process-wide pooled engine for `url` (created once per process and settings).

    Sensors are evaluated over and over in one code-server process; caching the engine keeps
    one small pool there instead of a new pool per tick.
    """
    key = (url, pool_size, max_overflow, pool_recycle_seconds)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(*key)
        return engine


def engine_for(settings: Settings) -> Engine:
    """The process-wide engine for the settings' database."""
    return get_engine(
        settings.database_url,
        settings.db_pool_size,
        settings.db_max_overflow,
        settings.db_pool_recycle_seconds,
    )


def create_engine(
    url: str, pool_size: int = 5, max_overflow: int = 5, pool_recycle_seconds: int = 1800
) -> Engine:
    """A new engine with pre-ping and recycle; SQLite gets WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the COPY path and
        # dagster-postgres use psycopg2, so one driver serves both.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=pool_recycle_seconds,
        pool_timeout=30,
        connect_args={"connect_timeout": 10, "application_name": "etl_assets"},
    )


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _begin_immediate) instead of pysqlite's
    # implicit, deferred transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the single writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")  # writers from several processes wait, not fail
    cursor.close()


def _begin_immediate(connection: sa.Connection) -> None:
    # Take SQLite's write lock at BEGIN: two processes that both read then write can otherwise
    # deadlock on lock upgrade, and the claim must be atomic across dispatchers. Pure readers
    # (see read_connection) start a deferred transaction and never wait for the writer.
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "etl_read_only"


@contextmanager
def read_connection(engine: Engine) -> Iterator[sa.Connection]:
    """A connection for queries only: on SQLite it never takes the write lock."""
    with engine.connect() as connection:
        connection.execution_options(**{_READ_ONLY: True})
        yield connection


def is_postgres(engine: Engine | sa.Connection) -> bool:
    """True when the engine or connection talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


@contextmanager
def temporary_postgres_database(admin_url: str, prefix: str = "etl_tmp") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `admin_url`, dropped on exit (open
    connections are closed by force). Yields its URL. For tests and benchmarks."""
    import uuid

    admin = create_engine(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except sa.exc.OperationalError:
            pass  # the server is gone: nothing to drop
        admin.dispose()
