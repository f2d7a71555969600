"""`etl failed-rows list | retry`: quarantined rows with their reasons, and their retry once
fixed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import click

from etl_assets.cli.output import (
    cell,
    echo_json,
    format_table,
    inert,
    load_settings,
    open_ledger,
    plain,
    reports_errors,
    utc,
)
from etl_assets.db import engine_for
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ops import actions
from etl_assets.ops.read_model import MAX_PAGE, FailedRowFilters, FailedRowSort, list_failed_rows
from etl_assets.pipeline.row_retry import RowRetryResult


@click.group("failed-rows")
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
        created_from=utc(since),
        created_to=utc(until),
        status=None if status == "all" else RowStatus(status),
    )
    page = list_failed_rows(engine_for(load_settings()), filters, sort=sort, limit=limit)
    if as_json:
        return echo_json([plain(dataclasses.asdict(r)) for r in page.items])
    columns = ("id", "job_id", "row_number", "stage", "status", "retry_count", "reason", "raw_row")
    rows = ([cell(getattr(r, c)) for c in columns] for r in page.items)
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
    settings = load_settings()
    result = actions.retry_failed_rows(
        open_ledger(settings), settings, row_ids=row_ids, job_id=job_id, fixes=corrections
    )
    if as_json:
        echo_json(dataclasses.asdict(result))
        return _refuse_unknown(row_ids, result)
    if row_ids and not _answered(result):  # nothing to summarize: only the error line
        return _refuse_unknown(row_ids, result)
    click.echo(
        f"loaded: {len(result.loaded)}, already loaded (duplicate): "
        f"{len(result.duplicate)}, still failing: {len(result.still_failing)}, "
        f"skipped: {len(result.skipped)}"
    )
    for row_id, reason in {**result.still_failing, **result.skipped}.items():
        click.echo(f"  row {row_id}: {inert(reason)}")
    _refuse_unknown(row_ids, result)


def _answered(result: RowRetryResult) -> set[int]:
    return {*result.loaded, *result.duplicate, *result.still_failing, *result.skipped}


def _refuse_unknown(row_ids: Sequence[int], result: RowRetryResult) -> None:
    """Exit 1 naming the ROW_IDS that are no quarantined row (unknown, or loaded already)."""
    answered = _answered(result)
    unknown = [row_id for row_id in row_ids if row_id not in answered]
    if unknown:
        raise click.ClickException(
            f"no quarantined row has id {', '.join(map(str, unknown))} (see `etl failed-rows list`)"
        )
