"""Generated CSV files of the shipped datasets, for the sample run, the tests and benchmarks.

Rows are deterministic for a seed. Sales order ids carry a prefix, so files generated with
different prefixes never share a natural key; `corrupt` plants one invalid value of each kind
the validator and the enrichment steps reject, in turn. Customer ids are the ones the sales
generator uses (C00001, ...), so customer records describe the customers orders name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from etl_assets.reference_api.server import KNOWN_SKUS

HEADER = [
    "order_id",
    "order_date",
    "customer_id",
    "sku",
    "quantity",
    "unit_price",
    "currency",
    "store_id",
]
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
LINES_PER_ORDER = 3

# (column, bad value, stage that rejects it): one of each, cycled through by `corrupt`.
DEFECTS = (
    ("order_date", "2024-02-30", "validate"),
    ("quantity", "two", "validate"),
    ("customer_id", "", "validate"),
    ("unit_price", "-4.50", "validate"),
    ("currency", "EURO", "validate"),
    ("sku", "SKU-9999", "enrich"),  # well-formed, but not in the catalog
)


def sales_frame(
    rows: int,
    *,
    seed: int = 0,
    order_prefix: str = "ORD",
    start: dt.date = dt.date(2024, 1, 1),
    days: int = 90,
    customers: int = 500,
    skus: int = 400,
    stores: int = 12,
) -> pd.DataFrame:
    """`rows` valid order lines as strings, three lines (distinct SKUs) per order."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    order = index // LINES_PER_ORDER
    line = index % LINES_PER_ORDER
    orders = int(order[-1]) + 1 if rows else 0
    skus = min(skus, KNOWN_SKUS)
    sku_number = (rng.integers(0, skus, size=orders)[order] + line * 7) % skus + 1
    calendar = np.array([(start + dt.timedelta(days=d)).isoformat() for d in range(days)])
    order_day = calendar[rng.integers(0, days, size=orders)]
    frame = pd.DataFrame(
        {
            "order_id": pd.Series(order).map(lambda n: f"{order_prefix}-{n:08d}"),
            "order_date": order_day[order],
            "customer_id": [f"C{n:05d}" for n in rng.integers(1, customers + 1, size=rows)],
            "sku": [f"SKU-{n:04d}" for n in sku_number],
            "quantity": rng.integers(1, 10, size=rows).astype(str),
            "unit_price": np.round(rng.uniform(1, 200, size=rows), 2).astype(str),
            "currency": np.array(CURRENCIES)[rng.integers(0, len(CURRENCIES), size=rows)],
            "store_id": [f"STORE-{n:02d}" for n in rng.integers(1, stores + 1, size=rows)],
        }
    )
    return frame[HEADER]


def corrupt(frame: pd.DataFrame, every: int) -> dict[str, int]:
    """Plant a defect in every `every`-th row (cycling through DEFECTS), in place.

    Returns how many rows each stage will reject: {"validate": n, "enrich": m}.
    """
    rejected = {"validate": 0, "enrich": 0}
    for n, position in enumerate(range(every - 1, len(frame), every)):
        column, value, stage = DEFECTS[n % len(DEFECTS)]
        frame.iat[position, frame.columns.get_loc(column)] = value
        rejected[stage] += 1
    return rejected


def customers_frame(rows: int, *, seed: int = 0, first: int = 1) -> pd.DataFrame:
    """`rows` valid customer records as strings, for customers C{first:05d} onwards."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(first, first + rows)
    names = np.array(["Ada", "Ben", "Chloé", "Dmitri", "Eun-ji", "Femi", "Giulia", "Hiro"])
    countries = np.array(["DE", "FR", "GB", "US", "JP", "CH", "NL", "ES"])
    signup = [dt.date(2023, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, rows)]
    return pd.DataFrame(
        {
            "customer_id": [f"C{n:05d}" for n in numbers],
            "name": [f"{names[n % len(names)]} {n}" for n in numbers],
            "email": [f"customer{n}@example.com" for n in numbers],
            "country": countries[rng.integers(0, len(countries), size=rows)],
            "signup_date": [d.isoformat() for d in signup],
        }
    )


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write `frame` as a CSV file with its header; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_sales_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write `frame` as a CSV file with the sales header; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def inventory_frame(
    *,
    seed: int = 0,
    days: tuple[dt.date, ...] = (dt.date(2024, 3, 31),),
    stores: int = 12,
    skus: int = 40,
) -> pd.DataFrame:
    """One stock count per store and SKU on each of `days`, as strings (the SKUs and stores
    the sales generator uses, so stock and sales meet in stock_cover)."""
    rng = np.random.default_rng(seed)
    rows = [
        (day.isoformat(), f"STORE-{store:02d}", f"SKU-{sku:04d}")
        for day in days
        for store in range(1, stores + 1)
        for sku in range(1, min(skus, KNOWN_SKUS) + 1)
    ]
    frame = pd.DataFrame(rows, columns=["snapshot_date", "store_id", "sku"])
    frame["on_hand"] = rng.integers(0, 200, size=len(frame)).astype(str)
    frame["unit_cost"] = np.round(rng.uniform(1, 120, size=len(frame)), 2).astype(str)
    frame["currency"] = np.array(CURRENCIES)[rng.integers(0, len(CURRENCIES), size=len(frame))]
    return frame
