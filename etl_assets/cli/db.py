"""`etl db upgrade | current`: create or upgrade the ledger and warehouse schema, and show
its revision."""

from __future__ import annotations

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

    engine = engine_for(load_settings())
    current, head = migrations.current_revision(engine), migrations.head_revision()
    if as_json:
        return echo_json({"database": current, "code": head, "up_to_date": current == head})
    verdict = "up to date" if current == head else "behind: run `etl db upgrade`"
    click.echo(f"database {current or 'not migrated'}, code {head} ({verdict})")
