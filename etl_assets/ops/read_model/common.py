"""Helpers the read model's modules share: page limits, Dagster run links, durations, NULLS
LAST ordering, and the expressions that differ between SQLite and PostgreSQL (seconds since
the epoch, time buckets). Package-private: the names with a leading underscore are for
`ops.read_model`'s own modules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from etl_assets.db import is_postgres

DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
MAX_PAGE = 500
UNIX_EPOCH_JULIAN_DAY = 2440587.5  # SQLite's julianday() of 1970-01-01T00:00:00Z


def run_url(dagster_ui_url: str | None, run_id: str | None) -> str | None:
    """The Dagster UI page of a run, or None when there is no run (or no UI configured)."""
    if not run_id or not dagster_ui_url:
        return None
    return f"{dagster_ui_url.rstrip('/')}/runs/{run_id}"


def _seconds(later: dt.datetime | None, earlier: dt.datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round(max((later - earlier).total_seconds(), 0.0), 3)


def _order(column: sa.ColumnElement[Any], descending: bool) -> sa.ColumnElement[Any]:
    # NULLS LAST either way, so SQLite and PostgreSQL put unfinished jobs in the same place.
    return (column.desc() if descending else column.asc()).nulls_last()


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, not {offset}")


def _epoch(conn: sa.Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, with fractions, on either dialect."""
    if is_postgres(conn):
        return sa.extract("epoch", column)
    return (sa.func.julianday(column) - UNIX_EPOCH_JULIAN_DAY) * 86400.0


def _bucket(
    conn: sa.Connection, column: sa.ColumnElement[Any], seconds: int
) -> sa.ColumnElement[Any]:
    """The index of the `seconds`-wide time bucket a timestamp falls in (epoch / seconds)."""
    # A literal, not a bind parameter: PostgreSQL must see the SELECT and GROUP BY
    # expressions as the same one.
    width: sa.ColumnElement[Any] = sa.literal_column(str(int(seconds)))
    if is_postgres(conn):
        return sa.func.floor(_epoch(conn, column) / width)
    # SQLite may lack floor(); the values are positive, so truncation is the floor.
    return sa.cast(_epoch(conn, column) / width, sa.Integer)
