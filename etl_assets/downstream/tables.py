"""The downstream tables: `daily_sales` and `customer_rfm`, recomputed in SQL for what changed.

Both aggregate the fact rows of *completed* jobs only: rows of a job still loading, or of one
that failed half-way, never reach them. Each table keeps a watermark (the last
`transaction.parsed` event it has absorbed, in `downstream_watermarks`); a refresh takes the
dates (daily_sales) or customers (customer_rfm) named by the events after the watermark,
deletes their aggregates and inserts them again from the fact table, then moves the
watermark, all in one transaction. A failed refresh moves nothing, so the next one covers its
events too. `full=True` rebuilds a table from scratch.

RFM: per customer, `last_order_date`, `frequency` (distinct orders) and `monetary` (revenue
in the reporting currency) are incremental; recency (days before the latest order date in
the table, so a rerun gives the same answer), the 1-5 scores (quintiles) and the segment are
relative to all customers, so they are rescored set-based over `customer_rfm` (one row per
customer, not per order line) on every refresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.datasets.sales import MONEY, sales_fact
from etl_assets.db import UTCDateTime, is_postgres, metadata, utcnow
from etl_assets.events.store import TRANSACTION_PARSED, events
from etl_assets.ledger.schema import completed_job_ids

# The keys a refresh recomputes go into a session-private table, so one set-based DELETE and
# one INSERT ... SELECT (a single pass over the fact table) serve any number of keys.
_scope_tables = sa.MetaData()  # not the schema's: temporary tables no migration creates
SCOPE_DATES = sa.Table("_scope_dates", _scope_tables, sa.Column("key", sa.Date))
SCOPE_CUSTOMERS = sa.Table("_scope_customers", _scope_tables, sa.Column("key", sa.String(64)))

daily_sales = sa.Table(
    "daily_sales",
    metadata,
    sa.Column("order_date", sa.Date, primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("reporting_currency", sa.String(3), primary_key=True),
    sa.Column("revenue", MONEY, nullable=False),
    sa.Column("units", sa.BigInteger, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_daily_sales_sku", "sku"),
)

customer_rfm = sa.Table(
    "customer_rfm",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("last_order_date", sa.Date, nullable=False),
    sa.Column("frequency", sa.Integer, nullable=False),
    sa.Column("monetary", MONEY, nullable=False),
    sa.Column("reporting_currency", sa.String(3), nullable=False),
    sa.Column("recency_days", sa.Integer),
    sa.Column("r_score", sa.Integer),
    sa.Column("f_score", sa.Integer),
    sa.Column("m_score", sa.Integer),
    sa.Column("segment", sa.String(32)),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_customer_rfm_segment", "segment"),
)

downstream_watermarks = sa.Table(
    "downstream_watermarks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Segment rules on the 1-5 scores (5 = most recent, most frequent, highest spend), first match.
SEGMENTS = (
    ("champions", "s.r >= 4 AND s.f >= 4"),
    ("loyal", "s.r >= 3 AND s.f >= 3"),
    ("new", "s.r >= 4"),
    ("at_risk", "s.r <= 2 AND s.f >= 3"),
    ("hibernating", "s.r <= 2"),
)
OTHER_SEGMENT = "needs_attention"

# The columns each recompute's SELECT fills, in its order; scores come from the rescoring.
DAILY_SALES_COLUMNS = [c.name for c in daily_sales.columns]
RFM_COLUMNS = [
    "customer_id",
    "last_order_date",
    "frequency",
    "monetary",
    "reporting_currency",
    "updated_at",
]
# (connection, SELECT of the keys or None for all, last event to take in) -> rows written
Recompute = Callable[[sa.Connection, sa.Select[Any] | None, int], int]


@dataclass
class Refresh:
    """What one refresh of a downstream table did."""

    table: str
    full: bool
    after_event_id: int
    up_to_event_id: int
    keys: int = 0  # dates or customers recomputed (all of them when full)
    rows: int = 0  # rows of the table written
    events: list[int] = field(default_factory=list)


def latest_event_id(conn: sa.Connection) -> int:
    """The id of the newest `transaction.parsed` event, 0 when there is none."""
    stmt = sa.select(sa.func.max(events.c.id)).where(events.c.topic == TRANSACTION_PARSED)
    return int(conn.execute(stmt).scalar() or 0)


def watermark(conn: sa.Connection, name: str) -> int:
    """The last event `name` has absorbed (0: none yet)."""
    stmt = sa.select(downstream_watermarks.c.last_event_id).where(
        downstream_watermarks.c.name == name
    )
    return int(conn.execute(stmt).scalar() or 0)


def absorbed_everywhere(conn: sa.Connection) -> int:
    """The last event every downstream table has absorbed (0 while one never refreshed):
    events up to it may go without any table missing what they named."""
    return min(watermark(conn, table.name) for table in (daily_sales, customer_rfm))


def refresh_daily_sales(
    engine: Engine, *, up_to_event_id: int | None = None, full: bool = False
) -> Refresh:
    """Recompute daily_sales for the dates the events since its watermark touched."""
    return _refresh(engine, "daily_sales", SCOPE_DATES, _daily_sales_for, up_to_event_id, full)


def refresh_customer_rfm(
    engine: Engine, *, up_to_event_id: int | None = None, full: bool = False
) -> Refresh:
    """Recompute customer_rfm for the customers the events since its watermark touched,
    then rescore every customer."""
    refresh = _refresh(
        engine, "customer_rfm", SCOPE_CUSTOMERS, _customer_rfm_for, up_to_event_id, full
    )
    with engine.begin() as conn:
        _rescore_customers(conn)
    return refresh


def _refresh(
    engine: Engine,
    name: str,
    scope: sa.Table,
    recompute: Recompute,
    up_to_event_id: int | None,
    full: bool,
) -> Refresh:
    with engine.begin() as conn:
        up_to = latest_event_id(conn) if up_to_event_id is None else up_to_event_id
        after = 0 if full else watermark(conn, name)
        refresh = Refresh(name, full, after, max(up_to, after))
        if full:
            refresh.rows = recompute(conn, None, up_to)
        elif up_to > after:
            payload_key = "dates" if scope is SCOPE_DATES else "customers"
            refresh.events, keys = _scope(conn, payload_key, after, up_to)
            refresh.keys = len(keys)
            if keys:
                _stage_scope(conn, scope, keys)
                refresh.rows = recompute(conn, sa.select(scope.c.key), up_to)
        _set_watermark(conn, name, refresh.up_to_event_id)
    return refresh


def _scope(conn: sa.Connection, key: str, after: int, up_to: int) -> tuple[list[int], set[str]]:
    """Ids of the transaction.parsed events in (after, up_to] and the union of their `key`."""
    stmt = (
        sa.select(events.c.id, events.c.payload)
        .where(events.c.topic == TRANSACTION_PARSED, events.c.id > after, events.c.id <= up_to)
        .order_by(events.c.id)
    )
    ids: list[int] = []
    keys: set[str] = set()
    for row in conn.execute(stmt):
        ids.append(int(row.id))
        keys.update(row.payload.get(key, []))
    return ids, keys


def _stage_scope(conn: sa.Connection, scope: sa.Table, keys: set[str]) -> None:
    """Fill the session-private table `scope` with `keys` (created on first use)."""
    column = "key DATE" if scope is SCOPE_DATES else "key VARCHAR(64)"
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {scope.name} ({column} PRIMARY KEY)")
    conn.exec_driver_sql(f"DELETE FROM {scope.name}")
    values = [dt.date.fromisoformat(k) for k in keys] if scope is SCOPE_DATES else list(keys)
    conn.execute(scope.insert(), [{"key": value} for value in values])
    if is_postgres(conn):
        # Temporary tables are never analyzed automatically: tell the planner how many keys
        # there are, so 3 dates use the order_date index and 50,000 customers a hash join.
        conn.exec_driver_sql(f"ANALYZE {scope.name}")


def absorbed_facts(up_to: int) -> sa.Select[Any]:
    """A SELECT over the fact rows that a refresh up to event `up_to` takes in (columns to be
    added): those of completed jobs with no `transaction.parsed` event after it.

    A job that completes while a refresh runs (its event is after `up_to`) is left to the
    next refresh, also for the dates this one recomputes: otherwise its rows would be in
    daily_sales before the watermark says so, and the totals check, which counts exactly
    these rows (verify.totals_disagree), would see a difference that is not there.
    """
    completed = completed_job_ids()
    waiting = sa.select(events.c.job_id).where(
        events.c.topic == TRANSACTION_PARSED,
        events.c.id > up_to,
        events.c.job_id.is_not(None),
    )
    return (
        sa.select()
        .select_from(sales_fact.join(completed, completed.c.job_id == sales_fact.c.job_id))
        .where(sales_fact.c.job_id.not_in(waiting))
    )


def _daily_sales_for(conn: sa.Connection, dates: sa.Select[Any] | None, up_to: int) -> int:
    f = sales_fact.c
    delete = daily_sales.delete()
    select = absorbed_facts(up_to).add_columns(
        f.order_date,
        f.sku,
        f.store_id,
        f.reporting_currency,
        sa.func.sum(f.amount_reporting),
        sa.func.sum(f.quantity),
        sa.func.count(sa.distinct(f.order_id)),
        sa.func.count(),
        sa.literal(utcnow(), UTCDateTime),
    )
    if dates is not None:
        delete = delete.where(daily_sales.c.order_date.in_(dates))
        select = select.where(f.order_date.in_(dates))
    select = select.group_by(f.order_date, f.sku, f.store_id, f.reporting_currency)
    conn.execute(delete)
    return _insert(conn, daily_sales, DAILY_SALES_COLUMNS, select)


def _customer_rfm_for(conn: sa.Connection, customers: sa.Select[Any] | None, up_to: int) -> int:
    f = sales_fact.c
    delete = customer_rfm.delete()
    select = absorbed_facts(up_to).add_columns(
        f.customer_id,
        sa.func.max(f.order_date),
        sa.func.count(sa.distinct(f.order_id)),
        sa.func.sum(f.amount_reporting),
        sa.func.max(f.reporting_currency),
        sa.literal(utcnow(), UTCDateTime),
    )
    if customers is not None:
        delete = delete.where(customer_rfm.c.customer_id.in_(customers))
        select = select.where(f.customer_id.in_(customers))
    conn.execute(delete)
    return _insert(conn, customer_rfm, RFM_COLUMNS, select.group_by(f.customer_id))


def _insert(
    conn: sa.Connection, table: sa.Table, columns: list[str], select: sa.Select[Any]
) -> int:
    return conn.execute(table.insert().from_select(columns, select)).rowcount or 0


def _rescore_customers(conn: sa.Connection) -> None:
    """Recency, quintile scores and segment of every customer, in one UPDATE."""
    as_of = conn.execute(sa.select(sa.func.max(customer_rfm.c.last_order_date))).scalar()
    if as_of is None:
        return
    recency = (
        "(CAST(:as_of AS DATE) - customer_rfm.last_order_date)"
        if is_postgres(conn)
        else "CAST(julianday(:as_of) - julianday(customer_rfm.last_order_date) AS INTEGER)"
    )
    segment = " ".join(f"WHEN {rule} THEN '{name}'" for name, rule in SEGMENTS)
    conn.execute(
        sa.text(
            f"UPDATE customer_rfm SET recency_days = {recency}, "
            "r_score = s.r, f_score = s.f, m_score = s.m, "
            f"segment = CASE {segment} ELSE '{OTHER_SEGMENT}' END "
            "FROM (SELECT customer_id, "
            "NTILE(5) OVER (ORDER BY last_order_date, customer_id) AS r, "
            "NTILE(5) OVER (ORDER BY frequency, customer_id) AS f, "
            "NTILE(5) OVER (ORDER BY monetary, customer_id) AS m "
            "FROM customer_rfm) AS s "
            "WHERE customer_rfm.customer_id = s.customer_id"
        ),
        {"as_of": as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of)},
    )


def _set_watermark(conn: sa.Connection, name: str, event_id: int) -> None:
    values = {"last_event_id": event_id, "updated_at": utcnow()}
    changed = conn.execute(
        downstream_watermarks.update().where(downstream_watermarks.c.name == name).values(values)
    ).rowcount
    if not changed:
        conn.execute(downstream_watermarks.insert().values(name=name, **values))
