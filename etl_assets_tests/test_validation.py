"""Row validation: typed valid rows out, every failing column named with its value; the
lookup keys of the valid rows."""

from __future__ import annotations

from typing import Any

import hypothesis
import pandas as pd
import pytest
from hypothesis import strategies as st

from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.datasets.sales import SALES
from etl_assets.pipeline import validation
from etl_assets.pipeline.source import distinct_rows
from etl_assets.pipeline.validation import validate_chunk

SALES_RULES = SALES.columns

GOOD = {
    "order_id": "O1",
    "order_date": "2024-01-05",
    "customer_id": "C1",
    "sku": "sku-0001",
    "quantity": "2",
    "unit_price": "10.50",
    "currency": "usd",
    "store_id": "S1",
}


def chunk(*rows: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    frame[ROW_NUMBER] = range(2, 2 + len(rows))
    return frame


def test_valid_rows_are_typed_and_normalized() -> None:
    result = validate_chunk(chunk(GOOD, GOOD | {"quantity": " 3 ", "unit_price": "0"}), SALES_RULES)
    assert result.rejected == []
    valid = result.valid
    assert valid["quantity"].tolist() == [2, 3]
    assert str(valid["quantity"].dtype) == "int64"
    assert valid["unit_price"].tolist() == [10.5, 0.0]
    assert valid["sku"].tolist() == ["SKU-0001", "SKU-0001"]
    assert valid["currency"].tolist() == ["USD", "USD"]
    assert valid[ROW_NUMBER].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("order_id", "", "order_id: missing"),
        ("order_id", "   ", "order_id: missing"),
        ("order_id", "x" * 65, "is longer than 64 characters"),
        ("order_date", "2024-02-30", "order_date: '2024-02-30' is not a date (YYYY-MM-DD)"),
        ("order_date", "05/01/2024", "is not a date (YYYY-MM-DD)"),
        ("quantity", "two", "quantity: 'two' is not a positive whole number"),
        ("quantity", "0", "quantity: '0' is not a positive whole number"),
        ("quantity", "1.5", "quantity: '1.5' is not a positive whole number"),
        ("unit_price", "-1", "unit_price: '-1' is not a non-negative number"),
        ("unit_price", "inf", "unit_price: 'inf' is not a non-negative number"),
        ("unit_price", "ten", "unit_price: 'ten' is not a non-negative number"),
        ("currency", "EURO", "currency: 'EURO' is longer than 3 characters"),
        ("currency", "E1R", "currency: 'E1R' is not an ISO code"),
        ("sku", "bad sku", "sku: 'bad sku' is not a SKU"),
    ],
)
def test_each_rule_rejects_with_a_reason(column: str, value: str, reason: str) -> None:
    result = validate_chunk(chunk(GOOD, GOOD | {column: value}), SALES_RULES)
    assert len(result.valid) == 1
    [rejected] = result.rejected
    assert rejected["row_number"] == 3
    assert reason in rejected["reason"]
    assert rejected["raw_row"][column] == value  # the raw value, as the file had it


def test_every_failing_column_is_named() -> None:
    result = validate_chunk(chunk(GOOD | {"quantity": "", "currency": "x"}), SALES_RULES)
    [rejected] = result.rejected
    assert rejected["reason"] == "quantity: missing; currency: 'x' is not an ISO code"
    assert result.valid.empty


def test_numbers_read_the_same_whichever_parser_reads_them() -> None:
    # A clean column goes through Arrow's parser; one bad value sends the column through
    # pandas' instead. The good values must come out the same either way.
    spellings = ["1e3", "+3", ".5", "5.", "007", "2.50"]
    expected = [1000.0, 3.0, 0.5, 5.0, 7.0, 2.5]
    rows = [GOOD | {"unit_price": value} for value in spellings]
    clean = validate_chunk(chunk(*rows), SALES_RULES)
    assert clean.valid["unit_price"].tolist() == expected and not clean.rejected
    mixed = validate_chunk(chunk(*rows, GOOD | {"unit_price": "1,5"}), SALES_RULES)
    assert mixed.valid["unit_price"].tolist() == expected
    [rejected] = mixed.rejected
    assert "unit_price: '1,5' is not a non-negative number" in rejected["reason"]


# Values each column may take in the differential test below: good ones in several
# spellings, and bad ones of every kind, so chunks repeat values the way real files do.
POOLS = {
    "order_id": ["O1", " O2 ", "", "x" * 65, "O3"],
    "order_date": ["2024-01-05", "2024-1-5", " 2024-01-06", "2024-02-30", "05/01/2024", ""],
    "customer_id": ["C1", "C2", "  ", "C3"],
    "sku": ["sku-0001", "SKU-0002", "bad sku", "", "s" * 70],
    "quantity": ["2", " 3 ", "0", "1.5", "two", "", "1e2"],
    "unit_price": ["10.50", "0", "-1", "inf", "ten", "1,5", ".5", ""],
    "currency": ["usd", "EUR", "EURO", "E1R", " gbp", ""],
    "store_id": ["S1", "S2", ""],
}


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(data=st.data(), rows=st.integers(60, 300))
def test_checking_distinct_values_once_gives_what_checking_every_row_gives(
    data: st.DataObject, rows: int
) -> None:
    # A column with few distinct values is checked once per value and the answers spread
    # back to its rows; the rows, their types and every reason must be those of the check
    # of each row on its own.
    frame = pd.DataFrame(
        {
            column: data.draw(st.lists(st.sampled_from(pool), min_size=rows, max_size=rows))
            for column, pool in POOLS.items()
        }
    )
    frame[ROW_NUMBER] = range(2, 2 + rows)
    spread = validation._spread
    spreads: list[int] = []

    def counted(*args: Any) -> pd.Series:
        spreads.append(1)
        return spread(*args)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(validation, "DISTINCT_MIN_ROWS", 1)  # by distinct values, however few
        patched.setattr(validation, "_spread", counted)
        by_distinct = validate_chunk(frame, SALES_RULES)
        assert spreads, "no column was checked by its distinct values"
        patched.setattr(validation, "DISTINCT_MIN_ROWS", rows + 1)  # every row on its own
        by_row = validate_chunk(frame, SALES_RULES)
    pd.testing.assert_frame_equal(by_distinct.valid, by_row.valid)
    assert by_distinct.rejected == by_row.rejected


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["USD", "EUR", "", "usd"]),
            st.integers(0, 3),
            st.sampled_from([0.5, 1.0, 2.5]),
            st.sampled_from(["2024-01-01", "2024-02-02"]),
        ),
        max_size=120,
    ),
    columns=st.sampled_from([["text"], ["text", "whole"], ["whole", "real", "date"]]),
)
def test_lookup_keys_are_the_distinct_rows_of_their_columns(
    rows: list[tuple[str, int, float, str]], columns: list[str]
) -> None:
    frame = pd.DataFrame(rows, columns=["text", "whole", "real", "date"]).astype(
        {"text": "str", "whole": "int64", "real": "float64"}
    )
    frame["date"] = pd.to_datetime(frame["date"])
    expected = set(frame[columns].drop_duplicates().itertuples(index=False, name=None))
    found = distinct_rows(frame, columns)
    assert len(found) == len(expected) and set(found) == expected
    # Python values, as the staged manifest and the API clients take them
    assert all(type(value) in (str, int, float, pd.Timestamp) for key in found for value in key)
