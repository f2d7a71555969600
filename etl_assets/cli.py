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
from typing import TYPE_CHECKING, Any, TypeVar

import click
import sqlalchemy.exc as sa_exc

from etl_assets.config import Settings, mask_secret
from etl_assets.db import engine_for
from etl_assets.errors import PermanentError
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger, quarantine
from etl_assets.ledger.errors import LedgerError
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.logs import configure_logging

if TYPE_CHECKING:  # imported lazily: they bring dagster and pandas, slow for a CLI
    from etl_assets.pipeline.row_retry import Enrichment

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


# ------------------------------------------------------------------------------ repair


@main.command()
@click.argument("job_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
@click.option(
    "--error-type",
    type=click.Choice([e.value for e in ErrorType]),
    help="With --all-failed: only jobs that failed this way.",
)
@click.option("--priority", type=int, help="Priority of the retried jobs (default RETRY_PRIORITY).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def retry(
    job_ids: Sequence[str],
    all_failed: bool,
    error_type: str | None,
    priority: int | None,
    as_json: bool,
) -> None:
    """Put failed JOB_IDS back to pending with a fresh attempt budget (history is kept)."""
    if bool(job_ids) == all_failed:
        raise click.UsageError("give JOB_IDS or --all-failed (not both)")
    if error_type and not all_failed:
        raise click.UsageError("--error-type goes with --all-failed")
    settings = _settings()
    ledger = _ledger(settings)
    chosen = settings.retry_priority if priority is None else priority
    if all_failed:
        retried = ledger.retry_failed(
            error_type=ErrorType(error_type) if error_type else None, priority=chosen
        )
    else:
        retried = [ledger.retry(job_id, priority=chosen) for job_id in job_ids]
    if as_json:
        return _echo_json([_job_dict(job) for job in retried])
    for job in retried:
        click.echo(
            f"{job.job_id}: pending again (priority {job.priority}, "
            f"{job.attempts_left} attempts), last error: {job.error_message or '-'}"
        )
    if not retried:
        click.echo("no failed jobs matched")


@main.command()
@click.argument("job_id")
@reports_errors
def cancel(job_id: str) -> None:
    """Cancel a pending or running job; a running job's Dagster run is terminated."""
    job = _ledger(_settings()).cancel(job_id)
    click.echo(f"{job_id}: cancelled")
    if job.run_id:
        click.echo(_terminate_run(job.run_id))


def _terminate_run(run_id: str) -> str:
    """Ask Dagster to terminate a run; the run also stops by itself at its next heartbeat."""
    if not os.environ.get("DAGSTER_HOME"):
        return f"run {run_id}: stops at its next heartbeat (set DAGSTER_HOME to terminate it now)"
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return f"run {run_id}: already ended"
        instance.run_coordinator.cancel_run(run_id)
        return f"run {run_id}: termination requested"


# ------------------------------------------------------------------------------ failed rows


@main.group("failed-rows")
def failed_rows() -> None:
    """Rows that were quarantined, with their reasons; retry them once fixed."""


@failed_rows.command("list")
@click.option("--job", "job_id", help="Only this job's rows.")
@click.option("--since", type=click.DateTime(), help="Only rows quarantined since (UTC).")
@click.option(
    "--status",
    type=click.Choice([s.value for s in RowStatus] + ["all"]),
    default=RowStatus.QUARANTINED.value,
    show_default=True,
)
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def failed_rows_list(
    job_id: str | None, since: dt.datetime | None, status: str, limit: int, as_json: bool
) -> None:
    """Quarantined rows: id, job, line number, stage, reason, retries, raw values."""
    rows = quarantine.list_rows(
        engine_for(_settings()),
        job_id=job_id,
        since=since.replace(tzinfo=dt.UTC) if since else None,
        status=None if status == "all" else RowStatus(status),
        limit=limit,
    )
    if as_json:
        return _echo_json([_plain(r) for r in rows])
    columns = ("id", "job_id", "row_number", "stage", "status", "retry_count", "reason", "raw_row")
    click.echo(format_table(columns, ([_cell(r[c]) for c in columns] for r in rows)))


@failed_rows.command("retry")
@click.argument("row_ids", nargs=-1, type=int)
@click.option("--job", "job_id", help="Retry every quarantined row of this job.")
@click.option(
    "--set",
    "fixes",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Correct a value before retrying (repeatable), e.g. --set currency=EUR.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def failed_rows_retry(
    row_ids: Sequence[int], job_id: str | None, fixes: Sequence[str], as_json: bool
) -> None:
    """Validate and load quarantined ROW_IDS (or a job's) again; those that pass are loaded."""
    from etl_assets.pipeline.row_retry import retry_rows

    if bool(row_ids) == bool(job_id):
        raise click.UsageError("give ROW_IDS or --job (not both)")
    corrections = {}
    for fix in fixes:
        column, sep, value = fix.partition("=")
        if not sep:
            raise click.UsageError(f"--set {fix!r}: write COLUMN=VALUE")
        corrections[column.strip().lower()] = value
    settings = _settings()
    result = retry_rows(
        _ledger(settings),
        enrichment_for(settings),
        row_ids=row_ids or None,
        job_id=job_id,
        fixes=corrections,
    )
    if as_json:
        return _echo_json(dataclasses.asdict(result))
    click.echo(
        f"loaded: {len(result.loaded)}, already loaded (duplicate): "
        f"{len(result.duplicate)}, still failing: {len(result.still_failing)}, "
        f"skipped: {len(result.skipped)}"
    )
    for row_id, reason in {**result.still_failing, **result.skipped}.items():
        click.echo(f"  row {row_id}: {reason}")


def enrichment_for(settings: Settings) -> Enrichment:
    """The FX and catalog clients and the reporting currency the settings give."""
    from etl_assets.pipeline.row_retry import Enrichment
    from etl_assets.resources.apis import api_clients

    fx, catalog = api_clients(settings)
    return Enrichment(fx=fx, catalog=catalog, reporting_currency=settings.reporting_currency)


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


@main.command()
@click.option("--concurrency", default=1, show_default=True, help="Runs executed at once.")
@click.option("--name", help="Worker name (default: etl-<pid>@<host>).")
def worker(concurrency: int, name: str | None) -> None:
    """Start a warm Celery run worker (production profile: needs CELERY_BROKER_URL and
    DAGSTER_HOME, the same as the daemon's)."""
    settings = _settings()
    if not settings.celery_broker_url:
        raise click.ClickException("set CELERY_BROKER_URL to the broker the daemon uses")
    if not os.environ.get("DAGSTER_HOME"):
        raise click.ClickException("set DAGSTER_HOME to the daemon's Dagster home")
    args = [
        sys.executable, "-m", "celery", "-A", "etl_assets.celery_app", "worker",
        "--queues", settings.celery_queue,
        "--concurrency", str(concurrency),
        "--prefetch-multiplier", "1",  # take one run at a time: the queue keeps the order
        "--loglevel", settings.log_level,
        "--hostname", name or f"etl-{os.getpid()}@%h",
    ]  # fmt: skip
    os.execv(args[0], args)


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


from etl_assets import events_cli, validate_cli  # noqa: E402, F401 - add `etl events`, `etl validate`

if __name__ == "__main__":
    sys.exit(main())
