"""What the `etl` commands share: tables, cells and JSON for their output, the settings and
ledger they use, and `reports_errors`, which turns the errors an operator can act on (an
unreachable or unmigrated database, a ledger refusal, a missing file) into one clear line
and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click
import sqlalchemy.exc as sa_exc

from etl_assets.config import Settings, mask_secret
from etl_assets.db import engine_for
from etl_assets.errors import PermanentError
from etl_assets.ledger import Job, Ledger
from etl_assets.ledger.errors import LedgerError
from etl_assets.ops import actions
from etl_assets.terminal import inert

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["inert"]  # re-exported: the commands import it from here with the rest


# The priorities the ops API accepts (ops/api/bodies.py, routes_jobs.py): the CLI takes the same.
PRIORITY = click.IntRange(-1000, 1000)


def load_settings() -> Settings:
    """The settings in force (from the environment)."""
    return Settings.from_env()


def open_ledger(settings: Settings) -> Ledger:
    """The ledger on the configured database, with the configured attempt budget."""
    return Ledger(engine_for(settings), max_attempts=settings.retry_max_attempts)


def reports_errors(command: F) -> F:
    """Turn the errors an operator can act on into one clear line and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except sa_exc.OperationalError as exc:
            url = mask_secret("database_url", load_settings().database_url)
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if "no such table" in first or "does not exist" in first:
                raise click.ClickException(
                    f"the database at {url} has no ledger tables: run `etl db upgrade`"
                ) from None
            raise click.ClickException(
                f"cannot reach the database at {url}: {first}. "
                "Check DATABASE_URL and that the server is running."
            ) from None
        except sa_exc.ProgrammingError as exc:
            raise click.ClickException(
                f"database error: {str(exc.orig).strip().splitlines()[0]}. "
                "If the schema is missing or old, run `etl db upgrade`."
            ) from None
        except (LedgerError, PermanentError, FileNotFoundError, actions.EnrichmentFailure) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A date typed on the command line, read as UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment is not None else None


def format_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table; every cell is made inert (see `inert`)."""
    body = [[inert(str(cell)) for cell in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines) if body else lines[0] + "\n(none)"


def cell(value: Any, width: int | None = 80) -> str:
    """A value as table text: "-" for None, dates to the second, long text cut to `width`;
    control characters shown escaped (see `inert`), never sent to the terminal."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    text = inert(str(value))
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def job_dict(job: Job) -> dict[str, Any]:
    """A job's fields, dates in ISO format (for JSON)."""
    return plain(dataclasses.asdict(job))


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with its datetimes in ISO format (for JSON)."""
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in values.items()}


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON."""
    click.echo(json.dumps(value, indent=2, default=str))
