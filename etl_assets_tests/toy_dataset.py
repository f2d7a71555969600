"""A dataset declared outside the package, the way docs/datasets.md says: its table, its
declaration, and `register()`. test_toy_dataset.py loads it as a DATASET_MODULES entry.

`toy` is sensor readings (no enrichment, no dimension); `toy_broken` is the same data with a
transform that has a bug (a KeyError), to show that a bug in dataset code is reported as one.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets import register
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
from etl_assets.db import metadata

LIMIT = 1000.0


def readings_table(name: str) -> sa.Table:
    """A table of readings, with the lineage columns every fact table has."""
    return sa.Table(
        name,
        metadata,
        sa.Column("sensor_id", sa.String(64), primary_key=True),
        sa.Column("reading_date", sa.Date, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("value_squared", sa.Float, nullable=False),
        *lineage_columns(),
    )


toy_readings = readings_table("toy_readings")
toy_broken_readings = readings_table("toy_broken_readings")


def squared(rows: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
    """Each reading's square."""
    rows["value_squared"] = rows["value"] ** 2
    return rows


def broken(rows: pd.DataFrame, context: TransformContext) -> pd.DataFrame:
    """A transform with a typo: the column is `value`."""
    rows["value_squared"] = rows["valeu"] ** 2
    return rows


def _over_the_limit(context: CheckContext) -> sa.Select[Any]:
    table = context.dataset.fact_table
    return sa.select(table.c.sensor_id, table.c.reading_date).where(table.c.value > LIMIT)


def readings(name: str, table: sa.Table, transform: Any) -> Dataset:
    """The readings dataset called `name`."""
    return Dataset(
        name=name,
        description="Sensor readings: one value per sensor and day.",
        columns=(
            ColumnRule("sensor_id", Kind.CODE, pattern=r"S-\d+", pattern_hint="a sensor id"),
            ColumnRule("reading_date", Kind.DATE),
            ColumnRule("value", Kind.NON_NEGATIVE_DECIMAL),
        ),
        natural_key=("sensor_id", "reading_date"),
        fact_table=table,
        transform=transform,
        event_keys={"sensors": "sensor_id", "dates": "reading_date"},
        completeness=Completeness(date="reading_date", group="sensor_id"),
        checks=(
            Check(
                name="values_within_limit",
                description=f"No reading is above {LIMIT:g}.",
                what="readings above the limit",
                offending=_over_the_limit,
                blocking=False,
            ),
        ),
    )


TOY = register(readings("toy", toy_readings, squared))
TOY_BROKEN = register(readings("toy_broken", toy_broken_readings, broken))
