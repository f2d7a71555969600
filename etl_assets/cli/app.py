"""The `etl` click group, `main`. The commands are added to it by `etl_assets.cli`.

Every error is one line on stderr with an exit status: 2 for a usage error (a bad option
value, a missing argument, an unknown command), 1 for a failure, including a setting that
cannot be read and a DATABASE_URL that is not a URL.
"""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy.exc as sa_exc

from etl_assets.cli.output import load_settings
from etl_assets.config import SettingError
from etl_assets.datasets.registry import load_modules
from etl_assets.errors import PermanentError
from etl_assets.logs import configure_logging


class OneLineErrors(click.Group):
    """The group whose commands' errors are each one line (see the module doc)."""

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
