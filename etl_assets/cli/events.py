"""`etl events list | retry`: the events the platform published and their handlers' outcomes.

`etl_assets.cli` adds the `events` group to the `etl` command.
"""

from __future__ import annotations

import click

from etl_assets.cli.output import cell, echo_json, format_table, load_settings, reports_errors
from etl_assets.db import engine_for
from etl_assets.events.store import EVENT_STATUSES, list_events, retry_events

EVENT_COLUMNS = ("id", "topic", "job_id", "status", "created_at", "handlers")


@click.group()
def events() -> None:
    """Events (e.g. transaction.parsed) and the handler runs they started."""


@events.command("list")
@click.option("--status", type=click.Choice(EVENT_STATUSES))
@click.option("--topic")
@click.option("--job", "job_id", help="Only events about this job.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def events_list(
    status: str | None, topic: str | None, job_id: str | None, limit: int, as_json: bool
) -> None:
    """Events, newest first, with each handler's outcome."""
    found = list_events(
        engine_for(load_settings()), status=status, topic=topic, job_id=job_id, limit=limit
    )
    if as_json:
        return echo_json(found)
    rows = (
        [cell(event[c]) for c in EVENT_COLUMNS[:-1]] + [_handlers(event["handlers"])]
        for event in found
    )
    click.echo(format_table(EVENT_COLUMNS, rows))


@events.command("retry")
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Every event whose handlers failed or never ran.")
@reports_errors
def events_retry(event_ids: tuple[int, ...], all_failed: bool) -> None:
    """Run the failed (or never-run) handlers of EVENT_IDS again; exit 1 if any still fails."""
    if bool(event_ids) == all_failed:
        raise click.UsageError("give EVENT_IDS or --all-failed (not both)")
    outcome = retry_events(engine_for(load_settings()), list(event_ids) if event_ids else None)
    for event_id, status in outcome.items():
        click.echo(f"event {event_id}: {status}")
    if not outcome:
        click.echo("no event to retry")
    if "failed" in outcome.values():
        raise SystemExit(1)


def _handlers(runs: list[dict[str, object]]) -> str:
    if not runs:
        return "-"
    return ", ".join(
        f"{run['handler']}={run['status']}" + (f" ({run['error']})" if run["error"] else "")
        for run in runs
    )
