"""`etl retry` and `etl cancel`: put failed jobs back to pending, or cancel a pending or
running one."""

from __future__ import annotations

from collections.abc import Sequence

import click

from etl_assets.cli.output import (
    PRIORITY,
    echo_json,
    job_dict,
    load_settings,
    open_ledger,
    reports_errors,
)
from etl_assets.ledger import ErrorType
from etl_assets.ops import actions


@click.command()
@click.argument("job_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
@click.option(
    "--error-type",
    type=click.Choice([e.value for e in ErrorType]),
    help="With --all-failed: only jobs that failed this way.",
)
@click.option(
    "--priority", type=PRIORITY, help="Priority of the retried jobs (default RETRY_PRIORITY)."
)
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
    settings = load_settings()
    retried = actions.retry_jobs(
        open_ledger(settings),
        settings,
        job_ids,
        all_failed=all_failed,
        error_type=ErrorType(error_type) if error_type else None,
        priority=priority,
    )
    if as_json:
        return echo_json([job_dict(job) for job in retried])
    for job in retried:
        click.echo(
            f"{job.job_id}: pending again (priority {job.priority}, "
            f"{job.attempts_left} attempts), last error: {job.error_message or '-'}"
        )
    if not retried:
        click.echo("no failed jobs matched")


@click.command()
@click.argument("job_id")
@reports_errors
def cancel(job_id: str) -> None:
    """Cancel a pending or running job; a running job's Dagster run is terminated."""
    cancelled = actions.cancel_job(open_ledger(load_settings()), job_id)
    click.echo(f"{job_id}: cancelled")
    if cancelled.run_note:
        click.echo(cancelled.run_note)
