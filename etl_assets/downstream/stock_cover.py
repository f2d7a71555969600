"""`stock_cover`: days of stock per product and store, from the latest inventory snapshot and
the units daily_sales says were sold in the 28 days up to it.

A cross-dataset table: it consumes the loads of `inventory` (the stock on hand) and of
`sales` (through daily_sales, which is refreshed first in the same run). A refresh recomputes
the products the new loads of either named. `days_of_cover` is on hand / average daily units
sold, empty when nothing sold in the window.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.inventory import inventory_snapshots
from etl_assets.db import UTCDateTime, is_postgres, metadata
from etl_assets.downstream.base import Downstream, absorbed_facts, insert_from, now_column
from etl_assets.downstream.daily_sales import daily_sales

WINDOW_DAYS = 28

stock_cover = sa.Table(
    "stock_cover",
    metadata,
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("snapshot_date", sa.Date, nullable=False),  # the latest snapshot of the pair
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("units_sold", sa.BigInteger, nullable=False),  # in the window up to the snapshot
    sa.Column("avg_daily_units", sa.Float, nullable=False),
    sa.Column("days_of_cover", sa.Float),  # none when nothing sold in the window
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
COLUMNS = [c.name for c in stock_cover.columns]


def _window_start(conn: sa.Connection, day: Any) -> Any:
    """The first day of the window that ends on `day`."""
    if is_postgres(conn):
        return day - sa.literal(WINDOW_DAYS - 1, sa.Integer)
    return sa.func.date(day, f"-{WINDOW_DAYS - 1} days")


def recompute(conn: sa.Connection, skus: sa.Select[Any] | None, up_to: int) -> int:
    """Delete and rebuild the rows of `skus` (None: all) from the absorbed inventory
    snapshots and daily_sales."""
    i = inventory_snapshots.c
    latest_select = absorbed_facts(inventory_snapshots, up_to).add_columns(
        i.store_id, i.sku, sa.func.max(i.snapshot_date).label("snapshot_date")
    )
    delete = stock_cover.delete()
    if skus is not None:
        latest_select = latest_select.where(i.sku.in_(skus))
        delete = delete.where(stock_cover.c.sku.in_(skus))
    latest = latest_select.group_by(i.store_id, i.sku).subquery("latest")
    snapshot, d = inventory_snapshots.alias("snapshot"), daily_sales.c
    units = sa.func.coalesce(sa.func.sum(d.units), 0)
    average = sa.cast(units, sa.Float) / WINDOW_DAYS
    select = (
        sa.select(
            latest.c.store_id,
            latest.c.sku,
            latest.c.snapshot_date,
            snapshot.c.on_hand,
            units,
            average,
            sa.case((units > 0, snapshot.c.on_hand / average), else_=None),
            now_column(),
        )
        .select_from(
            latest.join(
                snapshot,
                sa.and_(
                    snapshot.c.store_id == latest.c.store_id,
                    snapshot.c.sku == latest.c.sku,
                    snapshot.c.snapshot_date == latest.c.snapshot_date,
                ),
            ).outerjoin(
                daily_sales,
                sa.and_(
                    d.store_id == latest.c.store_id,
                    d.sku == latest.c.sku,
                    d.order_date <= latest.c.snapshot_date,
                    d.order_date >= _window_start(conn, latest.c.snapshot_date),
                ),
            )
        )
        .group_by(latest.c.store_id, latest.c.sku, latest.c.snapshot_date, snapshot.c.on_hand)
    )
    conn.execute(delete)
    return insert_from(conn, stock_cover, COLUMNS, select)


STOCK_COVER = Downstream(
    table=stock_cover,
    consumes=("inventory", "sales"),
    scope="products",
    scope_type=sa.String(64),
    recompute=recompute,
    reads=("daily_sales",),
    description=(
        "Days of stock per product and store: the latest inventory snapshot's units on hand "
        f"over the average daily units sold in the {WINDOW_DAYS} days up to it."
    ),
)
