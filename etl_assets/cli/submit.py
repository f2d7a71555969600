"""`etl submit`: CSV files in as pending jobs (the same content twice is one job)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from etl_assets.cli.output import (
    PRIORITY,
    echo_json,
    inert,
    job_dict,
    load_settings,
    open_ledger,
    reports_errors,
)
from etl_assets.ledger import Job
from etl_assets.ops import actions


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    help="What the CSV holds (default: the one dataset whose columns its header has).",
)
@click.option("--title", help="A title for the job (default: the file name).")
@click.option("--priority", default=0, show_default=True, type=PRIORITY, help="Higher runs first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def submit(
    files: Sequence[Path], dataset: str | None, title: str | None, priority: int, as_json: bool
) -> None:
    """Submit CSV FILES as pending jobs; the same content twice is reported as a duplicate.

    Only regular files are taken: a link, a FIFO, a device or a directory is refused with one
    line saying so (the other files are still submitted), and the command exits 1.
    """
    from etl_assets.intake.publisher import NotARegularFile, publish_file, source_archive

    settings = load_settings()
    ledger = open_ledger(settings)
    archive = source_archive(settings.staging_dir)
    results = []
    refused = 0
    for path in files:
        try:
            published = publish_file(
                ledger, archive, path, dataset=dataset, title=title, priority=priority
            )
        except (NotARegularFile, FileNotFoundError) as exc:
            click.echo(f"Error: {inert(str(exc))}", err=True)
            refused += 1
            continue
        results.append((path, published))
        if not as_json:
            verdict = "submitted as" if published.created else "duplicate of existing job"
            job = published.job
            click.echo(f"{inert(str(path))}: {verdict} {job.job_id} ({job.status})")
    _add_partitions([p.job for _, p in results if p.created])
    if as_json:
        echo_json([{"file": str(f), "created": p.created, **job_dict(p.job)} for f, p in results])
    if refused:
        raise SystemExit(1)


def _add_partitions(jobs: list[Job]) -> None:
    note = actions.add_partitions(jobs)
    if note:
        click.echo(f"note: {note}", err=True)
