"""The warehouse's shared dimensions, `dim_product` and `dim_customer`, and how datasets update
them: sales and inventory rows name products, sales rows and customer records name customers.

A dimension row is upserted from each chunk of fact rows, in the chunk's transaction
(`Dimension` in datasets/base.py); the comparisons below treat a missing value as "not known
yet" rather than as a value, since each dataset fills only the columns it knows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from etl_assets.datasets.base import Dimension
from etl_assets.db import metadata

dim_product = sa.Table(
    "dim_product",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("product_name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("last_job_id", sa.String(32), nullable=False),
)

dim_customer = sa.Table(
    "dim_customer",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    # From sales: the first and last order seen (none yet for a customer only a record names).
    sa.Column("first_order_date", sa.Date),
    sa.Column("last_order_date", sa.Date),
    # From customer records: the profile (none for a customer only orders name so far).
    sa.Column("name", sa.String(200)),
    sa.Column("email", sa.String(254)),
    sa.Column("country", sa.String(2)),
    sa.Column("signup_date", sa.Date),
    sa.Column("first_job_id", sa.String(32), nullable=False),
    sa.Column("last_job_id", sa.String(32), nullable=False),
)


def earliest(current: Any, new: Any) -> Any:
    """The earlier of two values, a missing one ignored (portable: no LEAST on SQLite)."""
    return sa.case(
        (current.is_(None), new), (new.is_(None), current), (new < current, new), else_=current
    )


def latest(current: Any, new: Any) -> Any:
    """The later of two values, a missing one ignored."""
    return sa.case(
        (current.is_(None), new), (new.is_(None), current), (new > current, new), else_=current
    )


def products_of(facts: pd.DataFrame, job_id: str) -> pd.DataFrame:
    """One dim_product row per SKU of the rows (a SKU's name and category come from one
    catalog lookup, so any of its rows will do)."""
    products = facts[["sku", "product_name", "category"]].drop_duplicates("sku", keep="last")
    products["last_job_id"] = job_id
    return products


def products(table: sa.Table, new: Any) -> dict[str, Any]:
    """A product's name and category follow the latest job that named it."""
    return {
        "product_name": new.product_name,
        "category": new.category,
        "last_job_id": new.last_job_id,
    }


PRODUCTS = Dimension(table=dim_product, key="sku", rows=products_of, updates=products)


def order_dates_of(facts: pd.DataFrame, job_id: str, date: str) -> pd.DataFrame:
    """customer_id, first_order_date, last_order_date of order rows (Arrow's hash aggregate:
    a third of pandas' groupby time on string columns, which the load pays every chunk)."""
    table = pa.Table.from_pandas(facts[["customer_id", date]], preserve_index=False)
    ranges = table.group_by("customer_id", use_threads=False).aggregate(
        [(date, "min"), (date, "max")]
    )
    by_name = ranges.select(["customer_id", f"{date}_min", f"{date}_max"])
    customers = by_name.rename_columns(
        ["customer_id", "first_order_date", "last_order_date"]
    ).to_pandas()
    customers["first_job_id"] = job_id
    customers["last_job_id"] = job_id
    return customers


def order_dates(table: sa.Table, new: Any) -> dict[str, Any]:
    """A customer's order range widens to take in the new orders."""
    return {
        "first_order_date": earliest(table.c.first_order_date, new.first_order_date),
        "last_order_date": latest(table.c.last_order_date, new.last_order_date),
        "last_job_id": new.last_job_id,
    }


def customer_orders(date: str) -> Dimension:
    """The customer dimension as order rows (with a `customer_id` and an order date column
    `date`) update it."""
    return Dimension(
        table=dim_customer,
        key="customer_id",
        rows=lambda facts, job_id: order_dates_of(facts, job_id, date),
        updates=order_dates,
    )


PROFILE_COLUMNS = ("name", "email", "country", "signup_date")


def profiles_of(records: pd.DataFrame, job_id: str) -> pd.DataFrame:
    """One dim_customer row per customer record (the natural key makes them unique)."""
    rows = records[["customer_id", *PROFILE_COLUMNS]].copy()
    rows["first_job_id"] = job_id
    rows["last_job_id"] = job_id
    return rows


def profiles(table: sa.Table, new: Any) -> dict[str, Any]:
    """A customer's profile is the one of the latest record loaded."""
    return {name: getattr(new, name) for name in (*PROFILE_COLUMNS, "last_job_id")}


CUSTOMER_PROFILES = Dimension(
    table=dim_customer, key="customer_id", rows=profiles_of, updates=profiles
)
