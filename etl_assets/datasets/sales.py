"""Sales order lines: one row per order line, loaded into `sales_fact`.

Columns: order id, date, customer, product SKU, quantity, unit price, currency, store. The
natural key is (order_id, sku): a line seen again is a duplicate. Each line is enriched with
its FX rate (amounts in the reporting currency) and its product's name and category; it
updates the product and customer dimensions. docs/datasets/sales.md describes it.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets.base import (
    ColumnRule,
    Completeness,
    Dataset,
    Kind,
    TransformContext,
    lineage_columns,
)
from etl_assets.datasets.common import CURRENCY, MONEY, SKU
from etl_assets.datasets.dimensions import PRODUCTS, customer_orders
from etl_assets.datasets.enrichments import (
    FxConversion,
    catalog_columns,
    catalog_products,
    fx_rates,
)
from etl_assets.db import metadata

sales_fact = sa.Table(
    "sales_fact",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("order_date", sa.Date, nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("store_id", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", MONEY, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("fx_rate", sa.Float, nullable=False),  # reporting currency per unit of `currency`
    sa.Column("fx_date", sa.Date, nullable=False),  # the date the rate was published
    sa.Column("amount_reporting", MONEY, nullable=False),
    sa.Column("reporting_currency", sa.String(3), nullable=False),
    *catalog_columns(),
    *lineage_columns(),  # job_id, source_row
    sa.Index("ix_sales_fact_job_id", "job_id"),
    sa.Index("ix_sales_fact_order_date", "order_date"),
)


def order_lines(rows: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
    """Amounts of each line: in its own currency, and in the reporting currency."""
    rows["amount"] = (rows["quantity"] * rows["unit_price"]).round(4)
    rows["amount_reporting"] = (rows["amount"] * rows["fx_rate"]).round(4)
    rows["reporting_currency"] = context.reporting_currency
    return rows


SALES = Dataset(
    name="sales",
    description="Sales order lines: order, date, customer, product, quantity, price, store.",
    columns=(
        ColumnRule("order_id", Kind.TEXT),
        ColumnRule("order_date", Kind.DATE),
        ColumnRule("customer_id", Kind.TEXT),
        SKU,
        ColumnRule("quantity", Kind.POSITIVE_INT),
        ColumnRule("unit_price", Kind.NON_NEGATIVE_DECIMAL),
        CURRENCY,
        ColumnRule("store_id", Kind.TEXT),
    ),
    natural_key=("order_id", "sku"),
    fact_table=sales_fact,
    transform=order_lines,
    enrichments=(
        fx_rates(
            date="order_date",
            currency="currency",
            conversion=FxConversion(amount="amount", converted="amount_reporting"),
        ),
        catalog_products(sku="sku"),
    ),
    dimensions=(PRODUCTS, customer_orders(date="order_date")),
    event_keys={"products": "sku", "customers": "customer_id", "dates": "order_date"},
    completeness=Completeness(date="order_date", group="store_id"),
)
