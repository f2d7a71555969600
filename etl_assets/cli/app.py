"""The `etl` click group, `main`, and where each of its commands lives (`COMMANDS`).

A command's module is imported when the command runs (or when `--help` lists it), not at
start: importing every one (Dagster, the ops API, the pipeline among them) took 2.6 s before
any command began, `etl submit` included.

Every error is one line on stderr with an exit status: 2 for a usage error (a bad option
value, a missing argument, an unknown command), 1 for a failure, including a setting that
cannot be read and a DATABASE_URL that is not a URL.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import sqlalchemy.exc as sa_exc

from etl_assets.cli.output import load_settings
from etl_assets.config import SettingError
from etl_assets.datasets.registry import load_modules
from etl_assets.errors import PermanentError
from etl_assets.logs import configure_logging

# Command name -> "module:attribute" of its click command.
COMMANDS = {
    "db": "etl_assets.cli.db:db",
    "submit": "etl_assets.cli.submit:submit",
    "jobs": "etl_assets.cli.jobs:jobs",
    "retry": "etl_assets.cli.repair:retry",
    "cancel": "etl_assets.cli.repair:cancel",
    "failed-rows": "etl_assets.cli.failed_rows:failed_rows",
    "watch": "etl_assets.cli.monitor:watch",
    "doctor": "etl_assets.cli.monitor:doctor",
    "config": "etl_assets.cli.admin:config_command",
    "reference-api": "etl_assets.cli.admin:reference_api",
    "worker": "etl_assets.cli.admin:worker",
    "prune": "etl_assets.cli.admin:prune",
    "dagster-home": "etl_assets.cli.admin:dagster_home",
    "api": "etl_assets.cli.api:api_command",  # the ops HTTP API and dashboard (etl_assets/ops)
    "events": "etl_assets.cli.events:events",
    "validate": "etl_assets.cli.validate:validate",
}


class OneLineErrors(click.Group):
    """The group whose commands' errors are each one line (see the module doc), and whose
    commands are imported when used (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, in the order `COMMANDS` gives them."""
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command of that name, its module imported now."""
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn a usage error, a bad setting or a malformed database URL into
        one line."""
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # click prints the usage and a hint on lines of their own: fold the hint in.
            command = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise click.UsageError(f"{exc.format_message()} (see `{command} --help`)") from None
        except SettingError as exc:
            raise click.ClickException(str(exc)) from None
        except sa_exc.ArgumentError as exc:
            raise click.ClickException(database_url_problem(exc)) from None


def database_url_problem(exc: sa_exc.ArgumentError) -> str:
    """One line for an unusable DATABASE_URL, without repeating the URL (it may hold a
    password)."""
    detail = str(exc).split(" from string", 1)[0].splitlines()[0]
    return (
        f"DATABASE_URL is not a usable SQLAlchemy URL ({detail}); "
        "write it as postgresql://user@host:5432/db or sqlite:///path/to/etl.db"
    )


@click.group(cls=OneLineErrors)
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
