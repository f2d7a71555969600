"""Column rules and column types that several shipped datasets share."""

from __future__ import annotations

import sqlalchemy as sa

from etl_assets.datasets.base import ColumnRule, Kind

MONEY = sa.Numeric(18, 4, asdecimal=False)

SKU = ColumnRule(
    "sku",
    Kind.CODE,
    pattern=r"[A-Z0-9][A-Z0-9._-]*",
    pattern_hint="a SKU (letters, digits, '-', '_', '.')",
)
CURRENCY = ColumnRule(
    "currency", Kind.CODE, max_length=3, pattern=r"[A-Z]{3}", pattern_hint="an ISO code"
)
