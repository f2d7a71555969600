"""Joining the enrichments' answers to a chunk's rows: the same rows, columns, types and
rejections as a left `DataFrame.merge` on the enrichment's keys, which it replaced."""

from __future__ import annotations

import hypothesis
import numpy as np
import pandas as pd
from hypothesis import strategies as st

from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.datasets.sales import SALES
from etl_assets.pipeline.enrich import enrich

DATES = ["2024-01-01", "2024-01-02", "2024-01-03"]
CURRENCIES = ["USD", "EUR", "GBP"]
SKUS = ["SKU-1", "SKU-2", "SKU-3", "SKU-4"]


def by_merge(rows: pd.DataFrame, lookups: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The join as it was: one left merge per enrichment."""
    merged = rows
    for enrichment in SALES.enrichments:
        merged = merged.merge(
            lookups[enrichment.name], how="left", on=list(enrichment.keys), validate="m:1"
        )
    known = np.logical_and.reduce(
        [merged[e.returns[0]].notna().to_numpy() for e in SALES.enrichments]
    )
    return merged[known]


def sales_rows(draw: st.DrawFn, count: int) -> pd.DataFrame:
    picks = {
        "order_date": DATES,
        "currency": CURRENCIES,
        "sku": SKUS,
    }
    frame = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(count)],
            **{
                column: draw(st.lists(st.sampled_from(values), min_size=count, max_size=count))
                for column, values in picks.items()
            },
            "quantity": np.arange(count, dtype="int64") + 1,
        }
    ).astype({"order_id": "str", "order_date": "str", "currency": "str", "sku": "str"})
    for column in ("customer_id", "store_id"):
        frame[column] = pd.Series(["X"] * count, dtype="str")
    frame["unit_price"] = 1.5
    frame[ROW_NUMBER] = np.arange(count, dtype="int64") + 2
    return frame


@st.composite
def chunks_and_answers(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rows = sales_rows(draw, draw(st.integers(0, 80)))
    pairs = draw(st.sets(st.tuples(st.sampled_from(DATES), st.sampled_from(CURRENCIES))))
    fx = pd.DataFrame(sorted(pairs), columns=["order_date", "currency"], dtype="str")
    fx["fx_rate"] = np.linspace(0.5, 2.0, len(fx))
    fx["fx_date"] = fx["order_date"]
    skus = draw(st.sets(st.sampled_from(SKUS)))
    catalog = pd.DataFrame({"sku": pd.Series(sorted(skus), dtype="str")})
    catalog["product_name"] = "name of " + catalog["sku"]
    catalog["category"] = pd.Series(["toys"] * len(catalog), dtype="str")
    return rows, {"fx_rates": fx, "catalog_products": catalog}


@hypothesis.settings(max_examples=80, deadline=None)
@hypothesis.given(case=chunks_and_answers())
def test_the_join_gives_what_a_left_merge_gives(
    case: tuple[pd.DataFrame, dict[str, pd.DataFrame]],
) -> None:
    rows, lookups = case
    joined, rejected = enrich(rows, SALES, lookups)
    expected = by_merge(rows, lookups)
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), expected.reset_index(drop=True))
    assert sorted(r["row_number"] for r in rejected) == sorted(
        set(rows[ROW_NUMBER]) - set(expected[ROW_NUMBER])
    )
    for rejection in rejected:  # each unknown key named with its value
        row = rows[rows[ROW_NUMBER] == rejection["row_number"]].iloc[0]
        assert row["sku"] in rejection["reason"] or row["currency"] in rejection["reason"]
