"""Helpers the read model's modules share: page limits, Dagster run links, durations, NULLS
LAST ordering, and the expressions that differ between SQLite and PostgreSQL (seconds since
the epoch, time buckets). Package-private: the names with a leading underscore are for
`ops.read_model`'s own modules.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from etl_assets.db import is_postgres

DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"
MAX_PAGE = 500
UNIX_EPOCH_JULIAN_DAY = 2440587.5  # SQLite's julianday() of 1970-01-01T00:00:00Z


# Statements built once and reused (`_built`). Bounded: a key can hold a caller's value (a
# bucket width the API was asked for), and no stream of requests may grow it for ever.
_STATEMENTS: OrderedDict[tuple[str, str], Any] = OrderedDict()
_STATEMENTS_KEPT = 256
_STATEMENTS_LOCK = threading.Lock()  # the API answers requests on several threads


def _built(conn: sa.Connection, name: str, build: Callable[[sa.Connection], Any]) -> Any:
    """The statement `build` makes for this connection's dialect, built on first use and
    kept (the `_STATEMENTS_KEPT` most recently used)."""
    key = (name, conn.dialect.name)
    with _STATEMENTS_LOCK:
        statement = _STATEMENTS.get(key)
        if statement is not None:
            _STATEMENTS.move_to_end(key)
            return statement
    statement = build(conn)  # outside the lock: two threads may build it, one is kept
    with _STATEMENTS_LOCK:
        _STATEMENTS[key] = statement
        if len(_STATEMENTS) > _STATEMENTS_KEPT:
            _STATEMENTS.popitem(last=False)
    return statement


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
    if offset > MAX_OFFSET:
        raise ValueError(f"offset must be at most {MAX_OFFSET}: page on with `cursor` instead")


def _epoch(conn: sa.Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, with fractions, on either dialect."""
    if is_postgres(conn):
        # date_part, not EXTRACT: since PostgreSQL 14 EXTRACT returns numeric, and numeric
        # arithmetic over a day's jobs costs several times the double precision one.
        return sa.func.date_part(sa.literal_column("'epoch'"), column, type_=sa.Float)
    return (sa.func.julianday(column) - UNIX_EPOCH_JULIAN_DAY) * 86400.0


def _bucket(
    conn: sa.Connection, column: sa.ColumnElement[Any], seconds: int
) -> sa.ColumnElement[Any]:
    """The index of the `seconds`-wide time bucket a timestamp falls in (epoch / seconds)."""
    # A literal, not a bind parameter: PostgreSQL must see the SELECT and GROUP BY
    # expressions as the same one.
    width: sa.ColumnElement[Any] = sa.literal_column(str(int(seconds)))
    if is_postgres(conn):
        # A double precision width: with an integer one SQLAlchemy casts it to NUMERIC, and
        # numeric division over a day's jobs costs more than the rest of the query.
        double = sa.literal_column(f"CAST({int(seconds)} AS DOUBLE PRECISION)", type_=sa.Float)
        return sa.func.floor(_epoch(conn, column) / double)
    # SQLite may lack floor(); the values are positive, so truncation is the floor.
    return sa.cast(_epoch(conn, column) / width, sa.Integer)


# ------------------------------------------------------------------------------ paging

# `offset` pages cost the rows they skip; past this many, page with the cursor instead.
MAX_OFFSET = 10_000
# Counts up to this many matching rows are exact and cheap (a bounded index scan); a list
# that matches more says how many the planner estimates, with `total_is_estimate`.
EXACT_COUNT_CAP = 10_000


def _check_cursor(offset: int, cursor: str | None) -> None:
    if offset and cursor:
        raise ValueError("give either offset or cursor, not both")


def _encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor holding the sort key of the last row of a page."""
    plain = [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The key values of a cursor `_encode_cursor` made, typed by `kinds`; ValueError when it
    is not one (tampered, or from another sort order)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        values: list[Any] = []
        for value, kind in zip(raw, kinds, strict=True):
            if value is None:
                values.append(None)
            elif kind is dt.datetime:
                values.append(dt.datetime.fromisoformat(value))
            elif isinstance(value, kind) and not isinstance(value, bool):
                values.append(value)
            else:
                raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("cursor is not one this list gave (or not for this sort)") from None
    return values


def _after(
    column: sa.ColumnElement[Any], tie: sa.ColumnElement[Any], value: Any, last: Any, desc: bool
) -> sa.ColumnElement[bool]:
    """Rows after (value, last) in (column, tie) order, both NOT NULL: the keyset condition
    as a row comparison, which PostgreSQL answers with one index range."""
    key = sa.tuple_(column, tie)
    bound = sa.tuple_(sa.literal(value, column.type), sa.literal(last, tie.type))
    return key < bound if desc else key > bound


def _count_matching(
    conn: sa.Connection, source: sa.FromClause, where: Sequence[sa.ColumnElement[bool]]
) -> tuple[int, bool]:
    """(how many rows of `source` match `where`, whether that is an estimate).

    Exact up to EXACT_COUNT_CAP (a bounded scan); beyond it, PostgreSQL's planner estimate,
    since an exact count of a million matches is a scan of a million index entries. SQLite
    (the embedded ledger, small) counts exactly.
    """
    bounded = sa.select(sa.literal(1)).select_from(source).where(*where).limit(EXACT_COUNT_CAP + 1)
    count = sa.select(sa.func.count()).select_from(bounded.subquery())
    found = int(conn.execute(count).scalar_one())
    if found <= EXACT_COUNT_CAP:
        return found, False
    if not is_postgres(conn):
        every = sa.select(sa.func.count()).select_from(source).where(*where)
        return int(conn.execute(every).scalar_one()), False
    matching = sa.select(sa.literal(1)).select_from(source).where(*where)
    compiled = matching.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    explained: Any = conn.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params
    ).scalar_one()
    plan = explained if isinstance(explained, list) else json.loads(explained)
    return max(int(plan[0]["Plan"]["Plan Rows"]), found), True
