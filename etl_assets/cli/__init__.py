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
from contextlib import ExitStack
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy.exc as sa_exc

from etl_assets.cli import stats_view, watch_view
from etl_assets.cli.api import api_command
from etl_assets.config import Settings, mask_secret
from etl_assets.db import engine_for, utcnow
from etl_assets.errors import PermanentError
from etl_assets.ledger import ErrorType, Job, JobStatus, Ledger
from etl_assets.ledger.errors import LedgerError
from etl_assets.ledger.models import FINISHED_STATUSES
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.logs import configure_logging
from etl_assets.ops import actions
from etl_assets.ops.read_model import (
    MAX_PAGE,
    FailedRowFilters,
    FailedRowSort,
    JobFilters,
    JobSort,
    job_detail,
    list_failed_rows,
    list_jobs,
    metrics,
    uploads,
)

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
    """Turn the errors an operator can act on into one clear line and exit status 1."""

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
        except (LedgerError, PermanentError, FileNotFoundError, actions.EnrichmentFailure) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@click.group()
def main() -> None:
    """Operate the ETL job platform: submit CSV files, inspect and repair jobs."""
    try:
        configure_logging(_settings().log_level)
    except ValueError:  # a bad setting: the command reports it (`etl doctor` names it)
        configure_logging("INFO")


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def db_current(as_json: bool) -> None:
    """Print the schema revision of the database and of this code."""
    from etl_assets import migrations

    engine = engine_for(_settings())
    current, head = migrations.current_revision(engine), migrations.head_revision()
    if as_json:
        return _echo_json({"database": current, "code": head, "up_to_date": current == head})
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
    from etl_assets.intake.publisher import publish_file, source_archive

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
    _add_partitions([p.job for p in results if p.created])
    if as_json:
        _echo_json(
            [
                {"file": str(f), "created": p.created, **_job_dict(p.job)}
                for f, p in zip(files, results, strict=True)
            ]
        )


def _add_partitions(jobs: list[Job]) -> None:
    note = actions.add_partitions(jobs)
    if note:
        click.echo(f"note: {note}", err=True)


# ------------------------------------------------------------------------------ jobs


@main.group()
def jobs() -> None:
    """List and inspect jobs in the ledger."""


@jobs.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in JobStatus]),
    help="Only jobs in this status (repeatable).",
)
@click.option("--dataset", help="Only jobs of this dataset.")
@click.option("--since", type=click.DateTime(), help="Only jobs created at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Only jobs created before (UTC).")
@click.option(
    "--error-type",
    type=click.Choice([e.value for e in ErrorType]),
    help="Only jobs whose last error was of this type.",
)
@click.option(
    "--sort",
    type=click.Choice([s.value for s in JobSort]),
    default=JobSort.CREATED_AT_DESC.value,
    show_default=True,
    help="Order; a leading '-' means descending.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_PAGE))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_list(
    statuses: Sequence[str],
    dataset: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    error_type: str | None,
    sort: str,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Jobs, newest first unless --sort says otherwise, filtered by status, dataset, creation
    date and error type."""
    filters = JobFilters(
        statuses=[JobStatus(s) for s in statuses],
        dataset=dataset,
        created_from=_utc(since),
        created_to=_utc(until),
        error_type=ErrorType(error_type) if error_type else None,
    )
    page = list_jobs(engine_for(_settings()), filters, sort=sort, limit=limit, offset=offset)
    if as_json:
        return _echo_json([_plain(dataclasses.asdict(job)) for job in page.items])
    rows = ([_cell(getattr(j, c)) for c in JOB_COLUMNS] for j in page.items)
    click.echo(format_table(JOB_COLUMNS, rows))
    if page.total > offset + len(page.items):
        click.echo(f"({len(page.items)} of {page.total}; see more with --offset/--limit)")


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A date typed on the command line, read as UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment is not None else None


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_show(job_id: str, as_json: bool) -> None:
    """Everything the ledger knows about JOB_ID, with its attempts."""
    settings = _settings()
    ledger = _ledger(settings)
    job = ledger.get(job_id)
    attempts = ledger.attempts(job_id)
    detail = job_detail(ledger.engine, job_id, dagster_ui_url=settings.dagster_ui_url)
    extra = {
        "progress": dataclasses.asdict(detail.progress),
        "dagster_run_url": detail.dagster_run_url,
    }
    if as_json:
        return _echo_json(
            _job_dict(job) | extra | {"attempt_history": [_plain(a) for a in attempts]}
        )
    for name, value in _job_dict(job).items():
        if name != "error_traceback":  # in full: the error message is why the job failed
            click.echo(f"{name:>18}: {_cell(value, width=None)}")
    click.echo(f"{'progress':>18}: {watch_view.job_lines(detail)[1]}")
    click.echo(f"{'dagster_run_url':>18}: {_cell(detail.dagster_run_url)}")
    if attempts:
        click.echo("\nattempts:")
        columns = (
            "attempt",
            "run_id",
            "worker",
            "started_at",
            "ended_at",
            "outcome",
            "error_message",
        )
        click.echo(format_table(columns, ([_cell(a[c]) for c in columns] for a in attempts)))
    if job.error_traceback:
        click.echo(f"\ntraceback of the last failure:\n{job.error_traceback}")


@jobs.command("stats")
@click.option(
    "--window-hours", default=24, show_default=True, type=click.IntRange(1, 24 * 90),
    help="Hours the windowed figures (completed, failed, failure rate, duration) cover.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_stats(window_hours: int, as_json: bool) -> None:
    """Jobs per status, retries, failure rate, average duration, queue depth by priority,
    stuck jobs, recent failures and the alerts firing now."""
    from etl_assets.ops.alerts import Thresholds, current_alerts

    settings = _settings()
    engine = engine_for(settings)
    figures = metrics(
        engine,
        stuck_after_seconds=settings.stuck_after_seconds,
        window_seconds=window_hours * 3600,
        dagster_ui_url=settings.dagster_ui_url,
    )
    alerts = current_alerts(engine, Thresholds.from_settings(settings))
    if as_json:
        return _echo_json(
            _plain(dataclasses.asdict(figures)) | {"alerts": [a.as_dict() for a in alerts]}
        )
    for title, columns, rows in stats_view.sections(figures, alerts):
        click.echo(f"\n{title}" if title else "")
        if columns:
            click.echo(format_table(columns, rows))
        else:
            click.echo("\n".join(str(r[0]) for r in rows))


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
    retried = actions.retry_jobs(
        _ledger(settings),
        settings,
        job_ids,
        all_failed=all_failed,
        error_type=ErrorType(error_type) if error_type else None,
        priority=priority,
    )
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
    cancelled = actions.cancel_job(_ledger(_settings()), job_id)
    click.echo(f"{job_id}: cancelled")
    if cancelled.run_note:
        click.echo(cancelled.run_note)


# ------------------------------------------------------------------------------ failed rows


@main.group("failed-rows")
def failed_rows() -> None:
    """Rows that were quarantined, with their reasons; retry them once fixed."""


@failed_rows.command("list")
@click.option("--job", "job_id", help="Only this job's rows.")
@click.option("--dataset", help="Only rows of this dataset's jobs.")
@click.option("--since", type=click.DateTime(), help="Only rows quarantined at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Only rows quarantined before (UTC).")
@click.option(
    "--status",
    type=click.Choice([s.value for s in RowStatus] + ["all"]),
    default=RowStatus.QUARANTINED.value,
    show_default=True,
)
@click.option(
    "--sort",
    type=click.Choice([s.value for s in FailedRowSort]),
    default=FailedRowSort.CREATED_AT_DESC.value,
    show_default=True,
    help="By quarantine time or by job (then line); a leading '-' means descending.",
)
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, MAX_PAGE))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def failed_rows_list(
    job_id: str | None,
    dataset: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    status: str,
    sort: str,
    limit: int,
    as_json: bool,
) -> None:
    """Quarantined rows: id, job, line number, stage, reason, retries, raw values."""
    filters = FailedRowFilters(
        job_id=job_id,
        dataset=dataset,
        created_from=_utc(since),
        created_to=_utc(until),
        status=None if status == "all" else RowStatus(status),
    )
    page = list_failed_rows(engine_for(_settings()), filters, sort=sort, limit=limit)
    if as_json:
        return _echo_json([_plain(dataclasses.asdict(r)) for r in page.items])
    columns = ("id", "job_id", "row_number", "stage", "status", "retry_count", "reason", "raw_row")
    rows = ([_cell(getattr(r, c)) for c in columns] for r in page.items)
    click.echo(format_table(columns, rows))
    if page.total > len(page.items):
        click.echo(f"({len(page.items)} of {page.total}; raise --limit to see more)")


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
    if bool(row_ids) == bool(job_id):
        raise click.UsageError("give ROW_IDS or --job (not both)")
    corrections = {}
    for fix in fixes:
        column, sep, value = fix.partition("=")
        if not sep:
            raise click.UsageError(f"--set {fix!r}: write COLUMN=VALUE")
        corrections[column.strip().lower()] = value
    settings = _settings()
    result = actions.retry_failed_rows(
        _ledger(settings), settings, row_ids=row_ids, job_id=job_id, fixes=corrections
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


# ------------------------------------------------------------------------------ monitoring


@main.command()
@click.option("--job", "job_id", help="Follow this job only; stops when it finishes.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1))
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option("--count", type=click.IntRange(1), help="Stop after this many frames.")
@click.option(
    "--recent-minutes", default=10, show_default=True, type=click.IntRange(0),
    help="Also show jobs that changed this recently.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON document per frame.")
@reports_errors
def watch(
    job_id: str | None,
    interval: float,
    once: bool,
    count: int | None,
    recent_minutes: int,
    as_json: bool,
) -> None:
    """Live progress of running jobs: a progress bar, rows done/total, rate and ETA, redrawn
    every --interval seconds until Ctrl-C (or --once)."""
    settings = _settings()
    engine = engine_for(settings)
    redraw = sys.stdout.isatty() and not as_json and not once

    def draw() -> bool:
        now = utcnow()
        if job_id:
            detail = job_detail(engine, job_id, dagster_ui_url=settings.dagster_ui_url, now=now)
            lines = watch_view.job_lines(detail)
            payload: Any = {"job_id": job_id, "status": detail.job.status,
                            "progress": dataclasses.asdict(detail.progress)}  # fmt: skip
            finished = detail.job.status in FINISHED_STATUSES
        else:
            overview = uploads(engine, recent_seconds=recent_minutes * 60, now=now)
            table = format_table(
                watch_view.FRAME_COLUMNS, watch_view.frame_rows(overview.recent_uploads)
            )
            lines = [watch_view.header(overview, now), table]
            payload = dataclasses.asdict(overview)
            finished = False
        if as_json:
            click.echo(json.dumps(payload, default=str))
        else:
            if redraw:
                click.clear()
            click.echo("\n".join(lines) + ("" if redraw else "\n"))
        return finished

    watch_view.Refresher(draw, interval, 1 if once else count).run()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check configuration, database, migrations, enrichment APIs, the Dagster instance and
    daemon, stuck jobs and dead letters; say what to fix. Exits 1 if a check FAILs."""
    from etl_assets.cli.doctor import Status, run_checks, summary

    checks = run_checks()
    if as_json:
        _echo_json(summary(checks))
    else:
        for check in checks:
            click.echo(f"{check.status.value:<5} {check.name:<15} {check.detail}")
            if check.fix and check.status is not Status.OK:
                click.echo(f"{'':<21}-> {check.fix}")
    if any(c.status is Status.FAIL for c in checks):
        sys.exit(1)


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
        sys.executable, "-m", "celery", "-A", "etl_assets.runtime.celery_app", "worker",
        "--queues", settings.celery_queue,
        "--concurrency", str(concurrency),
        "--prefetch-multiplier", "1",  # take one run at a time: the queue keeps the order
        "--loglevel", settings.log_level,
        "--hostname", name or f"etl-{os.getpid()}@%h",
    ]  # fmt: skip
    os.execv(args[0], args)


@main.command()
@click.option("--older-than", required=True, help="Remove jobs finished longer ago: 30d, 12h, 90m.")
@click.option(
    "--dead-letters-older-than",
    help="Remove failed jobs (dead letters) finished longer ago [default: 3x --older-than].",
)
@click.option("--batch-size", default=1000, show_default=True, help="Jobs per transaction.")
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def prune(
    older_than: str,
    dead_letters_older_than: str | None,
    batch_size: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove old finished jobs from the ledger, their files and their Dagster partitions."""
    from etl_assets.ops.retention import dagster_partition_deleter, parse_duration
    from etl_assets.ops.retention import prune as prune_jobs

    try:
        keep = parse_duration(older_than)
        keep_dead = parse_duration(dead_letters_older_than) if dead_letters_older_than else keep * 3
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    settings = _settings()
    with ExitStack() as stack:
        deleter = None
        if os.environ.get("DAGSTER_HOME"):
            import dagster as dg

            instance = stack.enter_context(dg.DagsterInstance.get())
            deleter = dagster_partition_deleter(instance)
        elif not dry_run and not as_json:
            click.echo("note: DAGSTER_HOME is not set: Dagster partitions are kept", err=True)
        report = prune_jobs(
            engine_for(settings),
            older_than=keep,
            dead_letters_older_than=keep_dead,
            delete_partitions=deleter,
            staging_dir=Path(settings.staging_dir),
            batch_size=batch_size,
            dry_run=dry_run,
        )
    figures = dataclasses.asdict(report) | {"jobs": report.jobs, "dry_run": dry_run}
    figures.pop("job_ids")
    if as_json:
        return _echo_json(figures)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report.jobs} jobs ({report.finished} finished, {report.dead_letters} dead "
        f"letters), {report.partitions_deleted} partitions, {report.events_deleted} handled "
        f"events, {report.files_deleted} files, in {report.batches} batches"
    )


@main.command("dagster-home")
@click.option(
    "--template", default="dagster.yaml", show_default=True, type=click.Path(path_type=Path)
)
def dagster_home(template: Path) -> None:
    """Write $DAGSTER_HOME/dagster.yaml from TEMPLATE and the settings in force."""
    from etl_assets.runtime.instance import initialize_pools, write_dagster_home

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise click.ClickException(
            "set DAGSTER_HOME to the folder Dagster should keep its state in"
        )
    try:
        written = write_dagster_home(Path(home), template, _settings())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {written}")
    try:
        pools = initialize_pools(Path(home))
    except Exception as exc:  # noqa: BLE001 - the file is written; say what is left to do
        click.echo(
            f"warning: API pools not created in Dagster's storage ({type(exc).__name__}); "
            "run `etl dagster-home` again once that storage is reachable",
            err=True,
        )
    else:
        click.echo(f"pools ready: {', '.join(pools)}")


def format_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines) if body else lines[0] + "\n(none)"


def _cell(value: Any, width: int | None = 80) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    text = str(value)
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def _job_dict(job: Job) -> dict[str, Any]:
    return _plain(dataclasses.asdict(job))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in values.items()}


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


main.add_command(api_command)  # etl api: the ops HTTP API and dashboard (etl_assets/ops)
from etl_assets.cli import events, validate  # noqa: E402, F401 - add `etl events`, `etl validate`

if __name__ == "__main__":
    sys.exit(main())
