"""`daily_sales`: revenue in the reporting currency, units, orders and lines per day, product
and store, from the sales of completed jobs; recomputed for the dates new loads touched.

Its check, `daily_sales_totals_match`, holds the totals invariant: per product, the fact
lines daily_sales has absorbed sum to its aggregates there.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.common import MONEY
from etl_assets.datasets.sales import sales_fact
from etl_assets.db import UTCDateTime, metadata
from etl_assets.downstream.base import (
    Downstream,
    absorbed_facts,
    insert_from,
    now_column,
    watermark,
)

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

COLUMNS = [c.name for c in daily_sales.columns]
# Money is stored with 4 decimals; sums over many rows may differ in the last places (floats
# on SQLite), so totals agree when they are within a cent.
TOLERANCE = 0.01


def recompute(conn: sa.Connection, dates: sa.Select[Any] | None, up_to: int) -> int:
    """Delete and rebuild the rows of `dates` (None: all) from the absorbed sales."""
    f = sales_fact.c
    delete = daily_sales.delete()
    select = absorbed_facts(sales_fact, up_to).add_columns(
        f.order_date,
        f.sku,
        f.store_id,
        f.reporting_currency,
        sa.func.sum(f.amount_reporting),
        sa.func.sum(f.quantity),
        sa.func.count(sa.distinct(f.order_id)),
        sa.func.count(),
        now_column(),
    )
    if dates is not None:
        delete = delete.where(daily_sales.c.order_date.in_(dates))
        select = select.where(f.order_date.in_(dates))
    select = select.group_by(f.order_date, f.sku, f.store_id, f.reporting_currency)
    conn.execute(delete)
    return insert_from(conn, daily_sales, COLUMNS, select)


DAILY_SALES = Downstream(
    table=daily_sales,
    consumes=("sales",),
    scope="dates",
    scope_type=sa.Date(),
    recompute=recompute,
    description=(
        "Revenue (reporting currency), units, orders and lines per day, product and store, "
        "from the sales of completed jobs; recomputed for the dates new jobs touched."
    ),
)


def totals_disagree(conn: sa.Connection) -> sa.Select[Any]:
    """Products whose fact lines (of the completed jobs daily_sales has absorbed) do not sum
    to their aggregate in daily_sales: revenue, units or lines."""
    absorbed_up_to = watermark(conn, daily_sales.name)
    # The rows the refresh up to the watermark took in, counted the way it counts them. A
    # pruned job's events may be gone: `etl prune` deletes only absorbed ones.
    f, d = sales_fact.c, daily_sales.c
    facts = (
        absorbed_facts(sales_fact, absorbed_up_to)
        .add_columns(
            f.sku.label("sku"),
            sa.func.sum(f.amount_reporting).label("revenue"),
            sa.func.sum(f.quantity).label("units"),
            sa.func.count().label("lines"),
            sa.literal(0).label("side"),
        )
        .group_by(f.sku)
    )
    aggregates = sa.select(
        d.sku.label("sku"),
        sa.func.sum(d.revenue).label("revenue"),
        sa.func.sum(d.units).label("units"),
        sa.func.sum(d.lines).label("lines"),
        sa.literal(1).label("side"),
    ).group_by(d.sku)
    both = sa.union_all(facts, aggregates).subquery()

    def side(column: str, n: int) -> Any:
        value = sa.case((both.c.side == n, both.c[column]), else_=0)
        return sa.func.coalesce(sa.func.sum(value), 0)

    fact_revenue, daily_revenue = side("revenue", 0), side("revenue", 1)
    return (
        sa.select(
            both.c.sku,
            fact_revenue.label("fact_revenue"),
            daily_revenue.label("daily_sales_revenue"),
            side("units", 0).label("fact_units"),
            side("units", 1).label("daily_sales_units"),
            side("lines", 0).label("fact_lines"),
            side("lines", 1).label("daily_sales_lines"),
        )
        .group_by(both.c.sku)
        .having(
            sa.or_(
                sa.func.abs(fact_revenue - daily_revenue) > TOLERANCE,
                side("units", 0) != side("units", 1),
                side("lines", 0) != side("lines", 1),
            )
        )
    )
