"""`etl jobs list | show | stats`: the jobs in the ledger, one job in full, and the figures
and alerts over all of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import click

from etl_assets.cli import stats_view, watch_view
from etl_assets.cli.output import (
    cell,
    echo_json,
    format_table,
    inert,
    job_dict,
    load_settings,
    open_ledger,
    plain,
    reports_errors,
    utc,
)
from etl_assets.db import engine_for
from etl_assets.ledger import ErrorType, JobStatus
from etl_assets.ops.read_model import (
    MAX_OFFSET,
    MAX_PAGE,
    JobFilters,
    JobSort,
    job_detail,
    list_jobs,
    metrics,
)

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


@click.group()
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
@click.option(
    "--offset", default=0, show_default=True, type=click.IntRange(0, MAX_OFFSET),
    help="Rows to skip (small jumps; page on with --cursor).",
)  # fmt: skip
@click.option("--cursor", default=None, help="The next page: the cursor the last page printed.")
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
    cursor: str | None,
    as_json: bool,
) -> None:
    """Jobs, newest first unless --sort says otherwise, filtered by status, dataset, creation
    date and error type."""
    filters = JobFilters(
        statuses=[JobStatus(s) for s in statuses],
        dataset=dataset,
        created_from=utc(since),
        created_to=utc(until),
        error_type=ErrorType(error_type) if error_type else None,
    )
    engine = engine_for(load_settings())
    try:
        page = list_jobs(engine, filters, sort=sort, limit=limit, offset=offset, cursor=cursor)
    except ValueError as exc:  # a cursor that is not one this list printed
        raise click.BadParameter(str(exc)) from None
    if as_json:
        return echo_json([plain(dataclasses.asdict(job)) for job in page.items])
    rows = ([cell(getattr(j, c)) for c in JOB_COLUMNS] for j in page.items)
    click.echo(format_table(JOB_COLUMNS, rows))
    if page.next_cursor:
        about = "about " if page.total_is_estimate else ""
        click.echo(
            f"({len(page.items)} of {about}{page.total}; next page: --cursor {page.next_cursor})"
        )


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def jobs_show(job_id: str, as_json: bool) -> None:
    """Everything the ledger knows about JOB_ID, with its attempts."""
    settings = load_settings()
    ledger = open_ledger(settings)
    job = ledger.get(job_id)
    attempts = ledger.attempts(job_id)
    detail = job_detail(ledger.engine, job_id, dagster_ui_url=settings.dagster_ui_url)
    extra = {
        "progress": dataclasses.asdict(detail.progress),
        "dagster_run_url": detail.dagster_run_url,
    }
    if as_json:
        return echo_json(job_dict(job) | extra | {"attempt_history": [plain(a) for a in attempts]})
    for name, value in job_dict(job).items():
        if name != "error_traceback":  # in full: the error message is why the job failed
            click.echo(f"{name:>18}: {cell(value, width=None)}")
    click.echo(f"{'progress':>18}: {inert(watch_view.job_lines(detail)[1])}")
    click.echo(f"{'dagster_run_url':>18}: {cell(detail.dagster_run_url)}")
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
        click.echo(format_table(columns, ([cell(a[c]) for c in columns] for a in attempts)))
    if job.error_traceback:
        traceback = inert(job.error_traceback, multiline=True)
        click.echo(f"\ntraceback of the last failure:\n{traceback}")


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

    settings = load_settings()
    engine = engine_for(settings)
    figures = metrics(
        engine,
        stuck_after_seconds=settings.stuck_after_seconds,
        window_seconds=window_hours * 3600,
        dagster_ui_url=settings.dagster_ui_url,
    )
    # The rules reuse these figures: the ledger is read once.
    alerts = current_alerts(
        engine, Thresholds.from_settings(settings), now=figures.generated_at, metrics=figures
    )
    if as_json:
        return echo_json(
            plain(dataclasses.asdict(figures)) | {"alerts": [a.as_dict() for a in alerts]}
        )
    for title, columns, rows in stats_view.sections(figures, alerts):
        click.echo(f"\n{title}" if title else "")
        if columns:
            click.echo(format_table(columns, rows))
        else:
            click.echo("\n".join(str(r[0]) for r in rows))
