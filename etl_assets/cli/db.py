"""`etl db upgrade | current | revision`: create or upgrade the ledger and warehouse schema,
show its revision, and write a new revision for a new dataset's table."""

from __future__ import annotations

from pathlib import Path

import click

from etl_assets.cli.output import echo_json, load_settings, reports_errors
from etl_assets.config import mask_secret
from etl_assets.db import engine_for


@click.group()
def db() -> None:
    """Create and upgrade the ledger and warehouse schema (alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@reports_errors
def db_upgrade(revision: str) -> None:
    """Create or upgrade the schema to REVISION."""
    from etl_assets import migrations

    settings = load_settings()
    engine = engine_for(settings)
    migrations.upgrade(engine, revision, extra_dirs=settings.migration_dirs)
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

    settings = load_settings()
    engine = engine_for(settings)
    current = migrations.current_revision(engine)
    head = migrations.head_revision(settings.migration_dirs)
    if as_json:
        return echo_json({"database": current, "code": head, "up_to_date": current == head})
    verdict = "up to date" if current == head else "behind: run `etl db upgrade`"
    click.echo(f"database {current or 'not migrated'}, code {head} ({verdict})")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the revision does, e.g. its table.")
@click.option(
    "--autogenerate/--empty",
    default=True,
    show_default=True,
    help="Write what the declared tables need that the database lacks, or an empty revision.",
)
@click.option(
    "--version-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write it into this folder (revisions kept outside the package; add it to "
    "MIGRATIONS_DIRS) instead of the package's.",
)
@reports_errors
def db_revision(message: str, autogenerate: bool, version_dir: Path | None) -> None:
    """Write a new alembic revision, e.g. for a new dataset's table; the database must be
    at head (`etl db upgrade`) so that only the new tables are in it. Review it, then run
    `etl db upgrade`."""
    from etl_assets import migrations

    settings = load_settings()
    written = migrations.revision(
        engine_for(settings),
        message,
        autogenerate=autogenerate,
        version_dir=version_dir,
        extra_dirs=settings.migration_dirs,
    )
    click.echo(f"wrote {written}: review it, then `etl db upgrade`")
