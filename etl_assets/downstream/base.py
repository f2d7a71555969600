"""What a downstream table is, and the incremental refresh every one of them shares.

A downstream table (`Downstream`) is built in SQL from the fact rows of *completed* jobs of
the datasets it consumes: rows of a job still loading, or of one that failed half-way, never
reach it. It keeps a watermark (the last `transaction.parsed` event it has absorbed, in
`downstream_watermarks`). A refresh takes the keys (dates, customers, products: one payload
key of the events) named by the events of its datasets after the watermark, recomputes the
table for those keys only, and moves the watermark, all in one transaction: a failed refresh
moves nothing, so the next one covers its events too. `full=True` rebuilds it from scratch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import UTCDateTime, is_postgres, metadata, utcnow
from etl_assets.events.store import TRANSACTION_PARSED, events
from etl_assets.ledger.schema import completed_job_ids

downstream_watermarks = sa.Table(
    "downstream_watermarks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# (connection, SELECT of the keys to recompute or None for all, last event to take in)
# -> rows written
Recompute = Callable[[sa.Connection, sa.Select[Any] | None, int], int]


@dataclass(frozen=True)
class Downstream:
    """A table refreshed from the loads of the datasets it consumes.

    `scope` is the payload key of the datasets' load events whose values the refresh
    recomputes (e.g. "dates"), `scope_type` their SQL type; `recompute` deletes and rebuilds
    the table's rows for those keys; `after` runs once the keys are recomputed (e.g. scores
    relative to the whole table). `reads` names other downstream tables it is built from,
    so Dagster refreshes those first.
    """

    table: sa.Table
    consumes: tuple[str, ...]  # dataset names
    scope: str
    scope_type: sa.types.TypeEngine[Any]
    recompute: Recompute
    description: str
    after: Callable[[sa.Connection], None] | None = None
    reads: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The table's name, which is also its asset's and its watermark's."""
        return self.table.name


@dataclass
class Refresh:
    """What one refresh of a downstream table did."""

    table: str
    full: bool
    after_event_id: int
    up_to_event_id: int
    keys: int = 0  # keys recomputed (all of them when full)
    rows: int = 0  # rows of the table written
    events: list[int] = field(default_factory=list)


def parsed_events(datasets: Sequence[str]) -> Any:
    """The condition of the `transaction.parsed` events of `datasets`."""
    return sa.and_(events.c.topic == TRANSACTION_PARSED, events.c.dataset.in_(list(datasets)))


def latest_event_id(conn: sa.Connection) -> int:
    """The newest `transaction.parsed` event of any dataset, 0 when none."""
    stmt = sa.select(sa.func.max(events.c.id)).where(events.c.topic == TRANSACTION_PARSED)
    return int(conn.execute(stmt).scalar() or 0)


def latest_event_id_of(conn: sa.Connection, dataset: str) -> int:
    """The newest `transaction.parsed` event of one dataset, 0 when none."""
    stmt = sa.select(sa.func.max(events.c.id)).where(parsed_events([dataset]))
    return int(conn.execute(stmt).scalar() or 0)


def watermark(conn: sa.Connection, name: str) -> int:
    """The last event `name` has absorbed (0: none yet)."""
    stmt = sa.select(downstream_watermarks.c.last_event_id).where(
        downstream_watermarks.c.name == name
    )
    return int(conn.execute(stmt).scalar() or 0)


def refresh(
    engine: Engine, downstream: Downstream, *, up_to_event_id: int | None = None, full: bool = False
) -> Refresh:
    """Recompute `downstream` for the keys its datasets' events since its watermark named
    (up to `up_to_event_id`, default the latest), then move the watermark; one transaction."""
    name = downstream.name
    with engine.begin() as conn:
        up_to = latest_event_id(conn) if up_to_event_id is None else up_to_event_id
        after = 0 if full else watermark(conn, name)
        result = Refresh(name, full, after, max(up_to, after))
        if full:
            result.rows = downstream.recompute(conn, None, up_to)
        elif up_to > after:
            result.events, keys = _scope(conn, downstream, after, up_to)
            result.keys = len(keys)
            if keys:
                scope = _stage_scope(conn, downstream, keys)
                result.rows = downstream.recompute(conn, sa.select(scope.c.key), up_to)
        if downstream.after is not None:
            downstream.after(conn)
        _set_watermark(conn, name, result.up_to_event_id)
    return result


def _scope(
    conn: sa.Connection, downstream: Downstream, after: int, up_to: int
) -> tuple[list[int], set[str]]:
    """Ids of the datasets' load events in (after, up_to] and the union of their scope key."""
    stmt = (
        sa.select(events.c.id, events.c.payload)
        .where(parsed_events(downstream.consumes), events.c.id > after, events.c.id <= up_to)
        .order_by(events.c.id)
    )
    ids: list[int] = []
    keys: set[str] = set()
    for row in conn.execute(stmt):
        ids.append(int(row.id))
        keys.update(row.payload.get(downstream.scope, []))
    return ids, keys


def _stage_scope(conn: sa.Connection, downstream: Downstream, keys: set[str]) -> sa.Table:
    """The session-private table of the keys a refresh recomputes, filled with `keys`: one
    set-based DELETE and one INSERT ... SELECT (a single pass over the fact table) serve any
    number of keys."""
    scope = sa.Table(
        f"_scope_{downstream.name}",
        sa.MetaData(),  # not the schema's: a temporary table no migration creates
        sa.Column("key", downstream.scope_type, primary_key=True),
    )
    kind = downstream.scope_type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {scope.name} (key {kind} PRIMARY KEY)")
    conn.execute(scope.delete())
    is_date = isinstance(downstream.scope_type, sa.Date)
    values = [dt.date.fromisoformat(k) if is_date else k for k in keys]
    conn.execute(scope.insert(), [{"key": value} for value in values])
    if is_postgres(conn):
        # Temporary tables are never analyzed automatically: tell the planner how many keys
        # there are, so 3 dates use the order_date index and 50,000 customers a hash join.
        conn.exec_driver_sql(f"ANALYZE {scope.name}")
    return scope


def absorbed_facts(fact_table: sa.Table, up_to: int) -> sa.Select[Any]:
    """A SELECT over the fact rows that a refresh up to event `up_to` takes in (columns to be
    added): those of completed jobs with no `transaction.parsed` event after it.

    A job that completes while a refresh runs (its event is after `up_to`) is left to the
    next refresh, also for the keys this one recomputes: otherwise its rows would be in the
    table before the watermark says so, and a check that counts exactly these rows (the
    totals of daily_sales) would see a difference that is not there.
    """
    completed = completed_job_ids()
    waiting = sa.select(events.c.job_id).where(
        events.c.topic == TRANSACTION_PARSED,
        events.c.id > up_to,
        events.c.job_id.is_not(None),
    )
    return (
        sa.select()
        .select_from(fact_table.join(completed, completed.c.job_id == fact_table.c.job_id))
        .where(fact_table.c.job_id.not_in(waiting))
    )


def insert_from(
    conn: sa.Connection, table: sa.Table, columns: list[str], select: sa.Select[Any]
) -> int:
    """INSERT INTO table (columns) SELECT ...; returns the rows written."""
    return conn.execute(table.insert().from_select(columns, select)).rowcount or 0


def now_column() -> Any:
    """The refresh's time, as a column of its SELECT."""
    return sa.literal(utcnow(), UTCDateTime)


def _set_watermark(conn: sa.Connection, name: str, event_id: int) -> None:
    values = {"last_event_id": event_id, "updated_at": utcnow()}
    changed = conn.execute(
        downstream_watermarks.update().where(downstream_watermarks.c.name == name).values(values)
    ).rowcount
    if not changed:
        conn.execute(downstream_watermarks.insert().values(name=name, **values))
