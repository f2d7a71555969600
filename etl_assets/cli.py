"""The `etl` command line: schema, submissions, the ledger, settings and local helpers.

Human tables by default, `--json` for scripts. A database that cannot be reached, or one
that was never migrated, is reported in one line with what to do, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy.exc as sa_exc

from etl_assets.config import Settings, mask_secret
from etl_assets.db import engine_for
from etl_assets.errors import PermanentError
from etl_assets.ledger import Job, JobStatus, Ledger
from etl_assets.ledger.errors import LedgerError
from etl_assets.logs import configure_logging

F = TypeVar("F", bound=Callable[..., Any])

JOB_COLUMNS = (
    "job_id",
    "status",
    "title",
    "attempts",
    "rows_total",
    "rows_loaded",
    "rows_quarantined",
    "rows_duplicate",
    "error_type",
    "created_at",
)


def _settings() -> Settings:
    return Settings.from_env()


def _ledger(settings: Settings) -> Ledger:
    return Ledger(engine_for(settings), max_attempts=settings.retry_max_attempts)


def reports_errors(command: F) -> F:
    """Turn the errors an operator can act on into one clear line and exit status 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except sa_exc.OperationalError as exc:
            url = mask_secret("database_url", _settings().database_url)
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if "no such table" in first or "does not exist" in first:
                raise click.ClickException(
                    f"the database at {url} has no ledger tables: run `etl db upgrade`"
                ) from None
            raise click.ClickException(
                f"cannot reach the database at {url}: {first}. "
                "Check DATABASE_URL and that the server is running."
            ) from None
        except sa_exc.ProgrammingError as exc:
            raise click.ClickException(
                f"database error: {str(exc.orig).strip().splitlines()[0]}. "
                "If the schema is missing or old, run `etl db upgrade`."
            ) from None
        except (LedgerError, PermanentError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@click.group()
def main() -> None:
    """Operate the ETL job platform: submit CSV files, inspect and repair jobs."""
    configure_logging(_settings().log_level)


# ------------------------------------------------------------------------------ db


@main.group()
def db() -> None:
    """Create and upgrade the ledger and warehouse schema (alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@reports_errors
def db_upgrade(revision: str) -> None:
    """Create or upgrade the schema to REVISION."""
    from etl_assets import migrations

    settings = _settings()
    engine = engine_for(settings)
    migrations.upgrade(engine, revision)
    click.echo(
        f"schema at {migrations.current_revision(engine)} "
        f"on {mask_secret('database_url', settings.database_url)}"
    )


@db.command("current")
@reports_errors
def db_current() -> None:
    """Print the schema revision of the database and of this code."""
    from etl_assets import migrations

    engine = engine_for(_settings())
    current, head = migrations.current_revision(engine), migrations.head_revision()
    verdict = "up to date" if current == head else "behind: run `etl db upgrade`"
    click.echo(f"database {current or 'not migrated'}, code {head} ({verdict})")


# ------------------------------------------------------------------------------ submit


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", default="sales", show_default=True, help="What the CSV holds.")
@click.option("--title", help="A title for the job (default: the file name).")
@click.option("--priority", default=0, show_default=True, help="Higher runs first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def submit(
    files: Sequence[Path], dataset: str, title: str | None, priority: int, as_json: bool
) -> None:
    """Submit CSV FILES as pending jobs; the same content twice is reported as a duplicate."""
    from etl_assets.publisher import publish_file, source_archive

    settings = _settings()
    ledger = _ledger(settings)
    archive = source_archive(settings.staging_dir)
    results = []
    for path in files:
        published = publish_file(
            ledger, archive, path, dataset=dataset, title=title, priority=priority
        )
        results.append(published)
        if not as_json:
            verdict = "submitted as" if published.created else "duplicate of existing job"
            click.echo(f"{path}: {verdict} {published.job.job_id} ({published.job.status})")
    _add_partitions([p.job.job_id for p in results if p.created])
    if as_json:
        _echo_json(
            [
                {"file": str(f), "created": p.created, **_job_dict(p.job)}
                for f, p in zip(files, results, strict=True)
            ]
        )


def _add_partitions(job_ids: list[str]) -> None:
    """Add the jobs' partitions now when a Dagster instance is configured (else the dispatch
    sensor adds them when it claims the jobs)."""
    if not job_ids or not os.environ.get("DAGSTER_HOME"):
        return
    import dagster as dg

    try:
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("jobs", job_ids)
    except Exception as exc:  # noqa: BLE001 - the jobs are in the ledger; this is a nicety
        click.echo(
            f"note: partitions not added now ({exc}); the dispatcher will add them", err=True
        )


# ------------------------------------------------------------------------------ jobs


@main.group()
def jobs() -> None:
    """List and inspect jobs in the ledger."""


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--dataset")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_list(status: str | None, dataset: str | None, limit: int, as_json: bool) -> None:
    """Jobs, newest first."""
    found = _ledger(_settings()).list_jobs(
        status=JobStatus(status) if status else None, dataset=dataset, limit=limit
    )
    if as_json:
        return _echo_json([_job_dict(job) for job in found])
    click.echo(
        format_table(JOB_COLUMNS, ([_cell(getattr(j, c)) for c in JOB_COLUMNS] for j in found))
    )


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_show(job_id: str, as_json: bool) -> None:
    """Everything the ledger knows about JOB_ID, with its attempts."""
    ledger = _ledger(_settings())
    job = ledger.get(job_id)
    attempts = ledger.attempts(job_id)
    if as_json:
        return _echo_json(_job_dict(job) | {"attempt_history": [_plain(a) for a in attempts]})
    for name, value in _job_dict(job).items():
        if name != "error_traceback":
            click.echo(f"{name:>18}: {_cell(value)}")
    if attempts:
        click.echo("\nattempts:")
        columns = ("attempt", "run_id", "started_at", "ended_at", "outcome", "error_message")
        click.echo(format_table(columns, ([_cell(a[c]) for c in columns] for a in attempts)))
    if job.error_traceback:
        click.echo(f"\ntraceback of the last failure:\n{job.error_traceback}")


@jobs.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_stats(as_json: bool) -> None:
    """Number of jobs in each status."""
    counts = _ledger(_settings()).status_counts()
    if as_json:
        return _echo_json(counts)
    click.echo(format_table(("status", "jobs"), sorted(counts.items())))


# ------------------------------------------------------------------------------ failed rows


@main.group("failed-rows")
def failed_rows() -> None:
    """Rows that were quarantined, with their reasons."""


@failed_rows.command("list")
@click.option("--job", "job_id", required=True, help="The job whose rows to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def failed_rows_list(job_id: str, as_json: bool) -> None:
    """Quarantined rows of a job: line number, reason and raw values."""
    rows = _ledger(_settings()).quarantined(job_id)
    if as_json:
        return _echo_json([_plain(r) for r in rows])
    columns = ("id", "row_number", "stage", "reason", "raw_row")
    click.echo(format_table(columns, ([_cell(r[c]) for c in columns] for r in rows)))


# ------------------------------------------------------------------------------ helpers


@main.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_command(as_json: bool) -> None:
    """Print the settings in force (secrets masked)."""
    rows = _settings().describe()
    if as_json:
        return _echo_json({name: value for name, value, _ in rows})
    click.echo(format_table(("setting", "value", "meaning"), rows))


@main.command("reference-api")
@click.option("--port", default=8765, show_default=True)
@click.option("--latency", default=0.0, show_default=True, help="Seconds added to each answer.")
def reference_api(port: int, latency: float) -> None:
    """Serve the reference FX and catalog APIs on 127.0.0.1:PORT until interrupted."""
    from etl_assets.reference_api import ReferenceApiServer

    server = ReferenceApiServer(port, latency_seconds=latency)
    click.echo(f"FX_API_URL={server.fx_url}\nCATALOG_API_URL={server.catalog_url}")
    server.serve_forever()


@main.command("dagster-home")
@click.option(
    "--template", default="dagster.yaml", show_default=True, type=click.Path(path_type=Path)
)
def dagster_home(template: Path) -> None:
    """Write $DAGSTER_HOME/dagster.yaml from TEMPLATE and the settings in force."""
    from etl_assets.instance import write_dagster_home

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise click.ClickException(
            "set DAGSTER_HOME to the folder Dagster should keep its state in"
        )
    written = write_dagster_home(Path(home), template, _settings())
    click.echo(f"wrote {written}")


def format_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines) if body else lines[0] + "\n(none)"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _job_dict(job: Job) -> dict[str, Any]:
    return _plain(dataclasses.asdict(job))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in values.items()}


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
