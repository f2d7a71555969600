"""The enrichments a dataset can declare, over the two HTTP APIs the platform ships clients for.

- `fx_rates(date=..., currency=...)`: the rate of each (date, currency) into the reporting
  currency, from the Frankfurter-style FX API (`fx_api`); it also brings the check that every
  fact row's conversion is present and right (`fx_conversion_present`).
- `catalog_products(sku=...)`: each SKU's name and category, from the catalog API
  (`catalog_api`).

Each takes the dataset's own column names, so any dataset with a date and a currency, or a
SKU, can use them. A new API is a resource (etl_assets/resources/apis.py) and one function
here that returns an `Enrichment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets.base import Check, CheckContext, Enrichment, TransformContext

# Money is stored with 4 decimals; a conversion agrees when it is within a cent.
TOLERANCE = 0.01


@dataclass(frozen=True)
class FxConversion:
    """The fact table columns that hold one FX conversion: `converted = amount x rate`."""

    amount: str
    converted: str
    rate: str = "fx_rate"
    rate_date: str = "fx_date"
    reporting_currency: str = "reporting_currency"


def fx_rates(*, date: str, currency: str, conversion: FxConversion) -> Enrichment:
    """The FX rate of each row's (date, currency) into the reporting currency.

    Adds `fx_rate` (reporting currency per unit of `currency`) and `fx_date` (the date the rate
    was published: a weekend or holiday has the last rate before it). A currency the API does
    not know on that date quarantines the row.
    """

    def lookup(api: Any, keys: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
        pairs = keys[[date, currency]].itertuples(index=False, name=None)
        rates: pd.DataFrame = api.rates(pairs, context.reporting_currency)
        return rates.rename(columns={"date": date, "currency": currency})

    return Enrichment(
        name="fx_rates",
        resource="fx_api",
        keys=(date, currency),
        returns=("fx_rate", "fx_date"),
        lookup=lookup,
        unknown=f"{currency}: no FX rate for {{{currency}}} on {{{date}}}",
        description=f"FX rate of each ({date}, {currency}) in the job: one API call per date.",
        checks=(fx_conversion_check(conversion),),
    )


def catalog_columns() -> list[sa.Column[Any]]:
    """The fact table columns `catalog_products` fills."""
    return [
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
    ]


def catalog_products(*, sku: str) -> Enrichment:
    """Each row's product name and category, by SKU, from the catalog API (100 per call).

    Adds `product_name` and `category`; a SKU the catalog does not know quarantines the row.
    """

    def lookup(api: Any, keys: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
        products: pd.DataFrame = api.products(set(keys[sku]))
        return products.rename(columns={"sku": sku})

    return Enrichment(
        name="catalog_products",
        resource="catalog_api",
        keys=(sku,),
        returns=("product_name", "category"),
        lookup=lookup,
        unknown=f"{sku}: {{{sku}}} is not in the product catalog",
        description="Name and category of each SKU in the job, from the catalog API.",
    )


def fx_conversion_check(conversion: FxConversion) -> Check:
    """Every fact row has a positive rate, its amount in the reporting currency, and that
    amount is `amount x rate`."""

    def offending(context: CheckContext) -> sa.Select[Any]:
        table = context.dataset.fact_table
        c = table.c
        amount, converted, rate = c[conversion.amount], c[conversion.converted], c[conversion.rate]
        currency = c[conversion.reporting_currency]
        key = [c[name] for name in context.dataset.natural_key]
        return sa.select(*key, rate, amount, converted, currency, c.job_id).where(
            sa.or_(
                rate.is_(None),
                rate <= 0,
                c[conversion.rate_date].is_(None),
                converted.is_(None),
                currency.is_(None),
                currency != context.reporting_currency,
                sa.func.abs(converted - amount * rate) > TOLERANCE,
            )
        )

    return Check(
        name="fx_conversion_present",
        description="Every fact row has an FX rate and its amount in the reporting currency.",
        what="fact rows without a usable conversion to the reporting currency",
        offending=offending,
    )
