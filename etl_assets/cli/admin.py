"""Local and maintenance commands: `etl config`, `etl reference-api`, `etl worker`,
`etl prune` and `etl dagster-home`."""

from __future__ import annotations

import dataclasses
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from etl_assets.cli.output import echo_json, format_table, load_settings, reports_errors
from etl_assets.db import engine_for


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_command(as_json: bool) -> None:
    """Print the settings in force (secrets masked)."""
    rows = load_settings().describe()
    if as_json:
        return echo_json({name: value for name, value, _ in rows})
    click.echo(format_table(("setting", "value", "meaning"), rows))


@click.command("reference-api")
@click.option("--port", default=8765, show_default=True)
@click.option("--latency", default=0.0, show_default=True, help="Seconds added to each answer.")
def reference_api(port: int, latency: float) -> None:
    """Serve the reference FX and catalog APIs on 127.0.0.1:PORT until interrupted."""
    from etl_assets.reference_api import ReferenceApiServer

    server = ReferenceApiServer(port, latency_seconds=latency)
    click.echo(f"FX_API_URL={server.fx_url}\nCATALOG_API_URL={server.catalog_url}")
    server.serve_forever()


@click.command()
@click.option("--concurrency", default=1, show_default=True, help="Runs executed at once.")
@click.option("--name", help="Worker name (default: etl-<pid>@<host>).")
def worker(concurrency: int, name: str | None) -> None:
    """Start a warm Celery run worker (production profile: needs CELERY_BROKER_URL and
    DAGSTER_HOME, the same as the daemon's)."""
    settings = load_settings()
    if not settings.celery_broker_url:
        raise click.ClickException("set CELERY_BROKER_URL to the broker the daemon uses")
    if not settings.dagster_home:
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


@click.command()
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
    settings = load_settings()
    with ExitStack() as stack:
        deleter = None
        if settings.dagster_home:
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
        return echo_json(figures)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report.jobs} jobs ({report.finished} finished, {report.dead_letters} dead "
        f"letters), {report.partitions_deleted} partitions, {report.events_deleted} handled "
        f"events, {report.files_deleted} files, in {report.batches} batches"
    )


@click.command("dagster-home")
@click.option(
    "--template", default="dagster.yaml", show_default=True, type=click.Path(path_type=Path)
)
def dagster_home(template: Path) -> None:
    """Write $DAGSTER_HOME/dagster.yaml from TEMPLATE and the settings in force."""
    from etl_assets.runtime.instance import initialize_pools, write_dagster_home

    home = load_settings().dagster_home
    if not home:
        raise click.ClickException(
            "set DAGSTER_HOME to the folder Dagster should keep its state in"
        )
    try:
        written = write_dagster_home(Path(home), template, load_settings())
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
