"""The `etl` click group, `main`. The commands are added to it by `etl_assets.cli`."""

from __future__ import annotations

import click

from etl_assets.cli.output import load_settings
from etl_assets.datasets.registry import load_modules
from etl_assets.errors import PermanentError
from etl_assets.logs import configure_logging


@click.group()
def main() -> None:
    """Operate the ETL job platform: submit CSV files, inspect and repair jobs."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
    except ValueError:  # a bad setting: the command reports it (`etl doctor` names it)
        configure_logging("INFO")
        return
    try:
        load_modules(settings.dataset_module_names)  # datasets of your own, DATASET_MODULES
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from None
