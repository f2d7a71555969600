"""Inventory snapshots: the stock on hand of each product in each store on a date, loaded into
`inventory_snapshots`.

Columns: snapshot date, store, SKU, units on hand, unit cost, currency. The natural key is
(snapshot_date, store_id, sku): a store counts a product once per snapshot. Each row gets its
product's name and category from the catalog and its stock value in the reporting currency
from the FX API; it updates the product dimension. docs/datasets/inventory.md describes it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets.base import (
    Check,
    CheckContext,
    ColumnRule,
    Completeness,
    Dataset,
    Kind,
    TransformContext,
    lineage_columns,
)
from etl_assets.datasets.common import CURRENCY, MONEY, SKU
from etl_assets.datasets.dimensions import PRODUCTS
from etl_assets.datasets.enrichments import (
    FxConversion,
    catalog_columns,
    catalog_products,
    fx_rates,
)
from etl_assets.db import metadata

inventory_snapshots = sa.Table(
    "inventory_snapshots",
    metadata,
    sa.Column("snapshot_date", sa.Date, primary_key=True),
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("unit_cost", MONEY, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("stock_value", MONEY, nullable=False),  # on_hand x unit_cost, in `currency`
    sa.Column("fx_rate", sa.Float, nullable=False),  # reporting currency per unit of `currency`
    sa.Column("fx_date", sa.Date, nullable=False),  # the date the rate was published
    sa.Column("stock_value_reporting", MONEY, nullable=False),
    sa.Column("reporting_currency", sa.String(3), nullable=False),
    *catalog_columns(),
    *lineage_columns(),  # job_id, source_row
    sa.Index("ix_inventory_snapshots_job_id", "job_id"),
    sa.Index("ix_inventory_snapshots_sku", "sku"),
)


def stock_values(rows: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
    """The value of each row's stock: in its own currency, and in the reporting currency."""
    rows["stock_value"] = (rows["on_hand"] * rows["unit_cost"]).round(4)
    rows["stock_value_reporting"] = (rows["stock_value"] * rows["fx_rate"]).round(4)
    rows["reporting_currency"] = context.reporting_currency
    return rows


def _snapshots_from_the_future(context: CheckContext) -> sa.Select[Any]:
    c = inventory_snapshots.c
    return sa.select(c.snapshot_date, c.store_id, c.sku, c.job_id).where(
        c.snapshot_date > sa.func.current_date()
    )


INVENTORY = Dataset(
    name="inventory",
    description="Stock snapshots: units on hand and unit cost per store, product and date.",
    columns=(
        ColumnRule("snapshot_date", Kind.DATE),
        ColumnRule("store_id", Kind.TEXT),
        SKU,
        ColumnRule("on_hand", Kind.NON_NEGATIVE_INT),
        ColumnRule("unit_cost", Kind.NON_NEGATIVE_DECIMAL),
        CURRENCY,
    ),
    natural_key=("snapshot_date", "store_id", "sku"),
    fact_table=inventory_snapshots,
    transform=stock_values,
    enrichments=(
        catalog_products(sku="sku"),
        fx_rates(
            date="snapshot_date",
            currency="currency",
            conversion=FxConversion(amount="stock_value", converted="stock_value_reporting"),
        ),
    ),
    dimensions=(PRODUCTS,),
    event_keys={"products": "sku", "stores": "store_id", "dates": "snapshot_date"},
    completeness=Completeness(date="snapshot_date", group="store_id"),
    checks=(
        Check(
            name="no_future_snapshots",
            description="No snapshot is dated after today (a mistyped year, or a clock).",
            what="snapshot rows dated in the future",
            offending=_snapshots_from_the_future,
            blocking=False,
        ),
    ),
)
