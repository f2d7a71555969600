"""`etl watch` and `etl doctor`: live progress of the running jobs, and the set-up and health
checks (the checks themselves are in `cli.doctor`, the frames in `cli.watch_view`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from etl_assets.cli import watch_view
from etl_assets.cli.output import echo_json, format_table, load_settings, reports_errors
from etl_assets.db import engine_for, utcnow
from etl_assets.ledger.models import FINISHED_STATUSES
from etl_assets.ops.read_model import job_detail, uploads


@click.command()
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
    settings = load_settings()
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check configuration, database, migrations, enrichment APIs, the Dagster instance and
    daemon, stuck jobs and dead letters; say what to fix. Exits 1 if a check FAILs."""
    from etl_assets.cli.doctor import Status, run_checks, summary

    checks = run_checks()
    if as_json:
        echo_json(summary(checks))
    else:
        for check in checks:
            click.echo(f"{check.status.value:<5} {check.name:<15} {check.detail}")
            if check.fix and check.status is not Status.OK:
                click.echo(f"{'':<21}-> {check.fix}")
    if any(c.status is Status.FAIL for c in checks):
        sys.exit(1)
