"""Every setting of the platform, read from environment variables with documented defaults.

This is the one module that knows about the environment. Everything else receives a
`Settings` value (or a resource built from one), so tests set the environment they need and
never read a developer's own settings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = ".etl_data"


def _setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The settings in force. Field names are the environment variable names, lower-cased."""

    data_dir: str = _setting(
        DEFAULT_DATA_DIR, "Root folder for the embedded defaults (SQLite file, inbox, staging)."
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL of the ledger and warehouse database. "
        "Default: a SQLite file `etl.db` in DATA_DIR.",
        secret=True,
    )
    inbox_dir: str = _setting("", "Folder watched for new CSV files, one sub-folder per dataset.")
    staging_dir: str = _setting("", "Folder for per-job intermediate chunks and archived sources.")
    dataset_modules: str = _setting(
        "",
        "Comma-separated Python modules that declare and register datasets of your own "
        "(imported before the code location is built).",
    )
    migrations_dirs: str = _setting(
        "",
        "Comma-separated folders of alembic revisions kept outside the package (your own "
        "datasets' tables); `etl db upgrade` applies them too.",
    )
    batch_size: int = _setting(20, "Pending jobs the dispatch sensor claims per tick.")
    jobs_per_run: int = _setting(
        10, "Small jobs run together in one batch run (1: every job in its own run)."
    )
    small_job_bytes: int = _setting(
        1_000_000, "Files up to this size are small jobs, which may share a batch run."
    )
    chunk_rows: int = _setting(
        20_000,
        "Rows per chunk: bounds memory (about 250 MB per run process) and is the checkpoint unit.",
    )
    csv_max_columns: int = _setting(
        1000, "Widest header a CSV file may have; a wider one fails the job (permanent)."
    )
    csv_max_cell_chars: int = _setting(
        10_000,
        "Longest cell value; a row with a longer one is quarantined, its raw row keeping "
        "only the start of the value.",
    )
    csv_max_field_chars: int = _setting(
        1_000_000,
        "Longest field the CSV reader takes at all (usually reached by an unterminated "
        "quote); a longer one fails the job (permanent), naming its line.",
    )
    csv_max_line_chars: int = _setting(
        2_000_000,
        "Longest record the CSV reader takes at all (a line, or the lines of one quoted "
        "record), counted in bytes as it reads: a longer one fails the job (permanent), "
        "naming its line, before it is held in memory. Never below CSV_MAX_FIELD_CHARS.",
    )
    retry_max_attempts: int = _setting(3, "Attempts a job gets in all before it is dead-lettered.")
    max_concurrent_jobs: int = _setting(4, "Runs Dagster's run queue lets run at once.")
    job_timeout_minutes: float = _setting(
        60.0,
        "Longest a run may take before Dagster's run monitoring stops it; fractions are "
        "allowed (0.05 is 3 s, for tests), rounded to whole seconds, at least 1.",
    )
    heartbeat_seconds: float = _setting(30.0, "How often a running job refreshes its heartbeat.")
    stuck_after_seconds: int = _setting(
        300, "Heartbeat age after which the reaper treats a processing job as stuck."
    )
    reaper_interval_seconds: int = _setting(60, "Seconds between reaper sensor ticks.")
    backoff_base_seconds: float = _setting(30.0, "Delay before the first retry of a job.")
    backoff_multiplier: float = _setting(
        2.0, "Growth of the retry delay from one retry to the next."
    )
    backoff_max_seconds: float = _setting(3600.0, "Upper bound of a retry delay.")
    backoff_jitter: float = _setting(
        0.25, "Random spread of each retry delay: 0.25 means +/- 25 %."
    )
    retry_priority: int = _setting(
        10, "Priority `etl retry` gives a job (at least), so a manual retry goes first."
    )
    dispatch_interval_seconds: int = _setting(5, "Seconds between dispatch sensor ticks.")
    inbox_interval_seconds: int = _setting(10, "Seconds between inbox sensor ticks.")
    downstream_interval_seconds: int = _setting(
        15, "Seconds between ticks of the sensor that checks and refreshes the downstream tables."
    )
    inbox_settle_seconds: float = _setting(
        2.0, "A file in the inbox must be unchanged this long before it is registered."
    )
    db_pool_size: int = _setting(5, "Connections kept open per process (PostgreSQL).")
    db_max_overflow: int = _setting(5, "Extra connections allowed above the pool size.")
    db_pool_recycle_seconds: int = _setting(1800, "Connections older than this are reopened.")
    fx_api_url: str = _setting("http://127.0.0.1:8765/fx", "Frankfurter-style FX rates API.")
    fx_api_token: str = _setting("", "Bearer token for the FX API, if it needs one.", secret=True)
    catalog_api_url: str = _setting("http://127.0.0.1:8765/catalog", "Product catalog API.")
    catalog_api_token: str = _setting(
        "", "Bearer token for the catalog API, if it needs one.", secret=True
    )
    api_timeout_seconds: float = _setting(10.0, "Timeout of each HTTP call to an enrichment API.")
    api_concurrency: int = _setting(
        4, "Requests one job sends to one enrichment API at once (distinct dates, SKU batches)."
    )
    fx_api_rate_per_second: float = _setting(
        0.0, "Most FX API requests a run process starts per second (0: no limit)."
    )
    catalog_api_rate_per_second: float = _setting(
        0.0, "Most catalog API requests a run process starts per second (0: no limit)."
    )
    reporting_currency: str = _setting("EUR", "Currency the warehouse reports amounts in.")
    events_webhook_url: str = _setting(
        "",
        "URL every event is POSTed to as JSON (a failure is recorded and retryable); "
        "empty: no webhook.",
        secret=True,
    )
    celery_broker_url: str = _setting(
        "",
        "Broker of the Celery run workers (e.g. amqp://guest@127.0.0.1//); when set, "
        "`etl dagster-home` makes Dagster launch runs on them.",
        secret=True,
    )
    celery_result_backend: str = _setting("rpc://", "Result backend of the Celery run workers.")
    celery_queue: str = _setting("dagster", "Celery queue runs are sent to and workers listen on.")
    log_level: str = _setting("INFO", "Log level of the platform's own loggers.")
    alert_interval_seconds: int = _setting(60, "Seconds between alerts sensor ticks.")
    alert_failure_rate: float = _setting(
        0.10, "Share of jobs finished in the last hour that failed above which an alert fires."
    )
    alert_pending_threshold: int = _setting(
        500, "Pending jobs in the queue above which an alert fires."
    )
    alert_daemon_stale_seconds: int = _setting(
        120, "Age of a Dagster daemon's last heartbeat above which an alert fires."
    )
    alert_webhook_url: str = _setting(
        "", "URL alerts are POSTed to as JSON (empty: alerts are only logged).", secret=True
    )
    ops_api_viewer_tokens: str = _setting(
        "", "Comma-separated bearer tokens that may read the ops API (`etl api`).", secret=True
    )
    ops_api_operator_tokens: str = _setting(
        "",
        "Comma-separated bearer tokens that may also retry, cancel and upload through the ops API.",
        secret=True,
    )
    ops_api_max_upload_mb: float = _setting(100.0, "Largest CSV the ops API accepts, in MB.")
    ops_api_max_body_kb: int = _setting(
        64, "Largest request body the ops API reads on any route but the upload, in KB."
    )
    dagster_ui_url: str = _setting(
        "http://127.0.0.1:3000", "Base URL of the Dagster UI, for links to a job's runs."
    )
    dagster_home: str = _setting(
        "",
        "Dagster's instance folder (Dagster reads it too); when set, `etl` adds partitions "
        "and terminates runs at once, and `etl api` checks the daemon.",
    )
    dagster_pg_url: str = _setting(
        "",
        "postgresql+psycopg2:// URL of Dagster's own storage; `etl dagster-home` writes it "
        "into dagster.yaml as an env reference.",
        secret=True,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, type(f.default))
        return cls(**values).resolved()

    def resolved(self) -> Settings:
        """Fill the settings whose defaults derive from DATA_DIR."""
        data = Path(self.data_dir).absolute()
        if self.database_url:
            _check_database_url(self.database_url)
        return dataclasses.replace(
            self,
            database_url=self.database_url or f"sqlite:///{data / 'etl.db'}",
            inbox_dir=self.inbox_dir or str(data / "inbox"),
            staging_dir=self.staging_dir or str(data / "staging"),
        )

    @property
    def job_timeout_seconds(self) -> int:
        """JOB_TIMEOUT_MINUTES as the whole seconds Dagster's `max_runtime_seconds` takes
        (an int there); never 0, which Dagster reads as no limit at all."""
        return max(1, round(self.job_timeout_minutes * 60))

    @property
    def dataset_module_names(self) -> list[str]:
        """DATASET_MODULES as a list."""
        return [name.strip() for name in self.dataset_modules.split(",") if name.strip()]

    @property
    def migration_dirs(self) -> list[Path]:
        """MIGRATIONS_DIRS as a list of folders."""
        return [Path(p.strip()) for p in self.migrations_dirs.split(",") if p.strip()]

    def describe(self) -> list[tuple[str, str, str]]:
        """(NAME, value in force with secrets masked, description) for `etl config` and docs."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = mask_secret(f.name, str(value)) if f.metadata["secret"] else str(value)
            rows.append((f.name.upper(), shown, f.metadata["doc"]))
        return rows


def mask_secret(name: str, value: str) -> str:
    """Hide a secret; for a database URL hide only its password, the rest helps debugging."""
    if not value:
        return ""
    if name == "database_url":
        import sqlalchemy.exc as sa_exc
        from sqlalchemy.engine import make_url

        try:
            return make_url(value).render_as_string(hide_password=True)
        except sa_exc.ArgumentError:  # unparsable: it may still hold a password, show none
            return "(not a valid SQLAlchemy URL)"
    return "****"


class SettingError(ValueError):
    """A setting's value in the environment cannot be read as its type."""


def _check_database_url(url: str) -> None:
    """Raise SettingError, without repeating the URL (it may hold a password), when DATABASE_URL
    cannot be parsed: found here, not as a traceback deep inside the first connection."""
    import sqlalchemy.exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        detail = str(exc).split(" from ", 1)[0].splitlines()[0]
        raise SettingError(
            f"setting DATABASE_URL is not a valid SQLAlchemy URL ({detail}); write it as "
            "postgresql://user@host:5432/db or sqlite:///path/to/etl.db"
        ) from None


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise SettingError(
            f"setting {name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None


def library_variable(name: str) -> str | None:
    """A variable another library reads itself (Arrow, glibc), for code that must not
    override what the user chose there."""
    return os.environ.get(name)


def secret_source(name: str, value: str, environ: Mapping[str, str] | None = None) -> Any:
    """`dg.EnvVar(name)` when the variable is set, so Dagster resolves it at run time and the
    UI never shows it; otherwise the (non-secret) default `value`, or None when empty."""
    env = os.environ if environ is None else environ
    if env.get(name):
        import dagster as dg

        return dg.EnvVar(name)
    return value or None
