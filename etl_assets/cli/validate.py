"""`etl validate`: missing dates per group (e.g. store) and gaps in the loaded data of a range.

`etl_assets.cli` adds the command to `etl`.
"""

from __future__ import annotations

import datetime as dt

import click

from etl_assets.cli.output import echo_json, format_table, load_settings, reports_errors
from etl_assets.db import engine_for
from etl_assets.warehouse.completeness import Completeness, check_completeness

GAPS_SHOWN = 5  # per group in the table; --json lists them all


@click.command("validate")
@click.option("--dataset", required=True, help="A dataset that declares completeness columns.")
@click.option("--from", "first", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "last", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="Only this value of the dataset's group column, e.g. a store (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def validate(
    dataset: str, first: dt.datetime, last: dt.datetime, groups: tuple[str, ...], as_json: bool
) -> None:
    """Report the dates each group (e.g. store) has no loaded rows for, from --from to --to
    (inclusive); exit 1 when any date is missing."""
    report = check_completeness(
        engine_for(load_settings()), dataset, first.date(), last.date(), list(groups) or None
    )
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(_table(report))
    if not report.complete:
        raise SystemExit(1)


def _table(report: Completeness) -> str:
    days = (report.last - report.first).days + 1
    lines = [f"{report.dataset}: {report.first} to {report.last} ({days} days)", ""]
    rows = []
    for group in report.groups:
        gaps = [f"{a}" if a == b else f"{a}..{b}" for a, b in group.gaps]
        shown = ", ".join(gaps[:GAPS_SHOWN]) + (
            f" (+{len(gaps) - GAPS_SHOWN})" if len(gaps) > GAPS_SHOWN else ""
        )
        rows.append((group.group, group.dates_loaded, len(group.missing_dates), shown or "-"))
    by = report.group_by
    lines.append(format_table((by, "days loaded", "days missing", "gaps"), rows))
    if report.dates_without_data:
        lines.append(f"\n{len(report.dates_without_data)} dates without data for any {by}")
    lines.append(
        f"\ncomplete: every {by} has data on every date"
        if report.complete
        else "\nINCOMPLETE: dates are missing (exit status 1)"
    )
    return "\n".join(lines)
