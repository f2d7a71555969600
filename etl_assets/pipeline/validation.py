"""The vectorized row validation every dataset uses, by its column rules (datasets/base.py).

A chunk of raw CSV text goes in; typed valid rows and rejected rows (with their line number,
raw values and every reason they failed) come out. Only failing rows are touched one by one,
so a clean million-row file costs a handful of pandas operations per column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.datasets.base import ROW_NUMBER, ColumnRule, Kind

MISSING = "missing"
# Below this many rows a chunk is checked value by value: finding distinct values costs a few
# pandas calls more, which only a large chunk pays back (a small job's file is one chunk).
DISTINCT_MIN_ROWS = 1000
DISTINCT_SAMPLE_ROWS = 1024  # the rows that tell whether a column repeats its values


@dataclass(frozen=True)
class ValidatedChunk:
    """Typed valid rows and rejected rows of one chunk."""

    valid: pd.DataFrame
    rejected: list[dict[str, Any]]


def validate_chunk(raw: pd.DataFrame, rules: Sequence[ColumnRule]) -> ValidatedChunk:
    """Check every rule on a chunk of raw strings (with its ROW_NUMBER column).

    Returns the valid rows with typed columns and the rejected rows as
    {row_number, raw_row, reason}; the reason names every failing column and its value.
    """
    typed: dict[str, pd.Series] = {}
    problems: list[tuple[str, pd.Series, str]] = []  # (column, failing rows, why they fail)
    for rule in rules:
        values, failures = _check_column(raw[rule.name], rule)
        typed[rule.name] = values
        problems.extend((rule.name, mask, why) for mask, why in failures)

    bad = np.zeros(len(raw), dtype=bool)
    for _, mask, _ in problems:
        bad |= mask.to_numpy()

    valid = pd.DataFrame({name: series[~bad] for name, series in typed.items()})
    valid[ROW_NUMBER] = raw[ROW_NUMBER][~bad].to_numpy()
    return ValidatedChunk(
        valid=valid.reset_index(drop=True), rejected=_rejections(raw, bad, problems)
    )


def _rejections(
    raw: pd.DataFrame, bad: np.ndarray, problems: list[tuple[str, pd.Series, str]]
) -> list[dict[str, Any]]:
    if not bad.any():
        return []
    positions = np.flatnonzero(bad)
    reasons: dict[int, list[str]] = {int(p): [] for p in positions}
    for column, mask, why in problems:
        for position in np.flatnonzero(mask.to_numpy()):
            value = raw[column].iat[position]
            shown = "missing" if why == MISSING else f"{str(value).strip()!r} {why}"
            reasons[int(position)].append(f"{column}: {shown}")
    data_columns = [c for c in raw.columns if c != ROW_NUMBER]
    rejected = []
    for position in positions:
        row = raw.iloc[position]
        rejected.append(
            {
                "row_number": int(row[ROW_NUMBER]),
                "raw_row": {c: str(row[c]) for c in data_columns},
                "reason": "; ".join(reasons[int(position)]),
            }
        )
    return rejected


def _check_column(
    raw: pd.Series, rule: ColumnRule
) -> tuple[pd.Series, list[tuple[pd.Series, str]]]:
    """The typed column and the (failing rows, why they fail) pairs of one rule.

    Every check looks at one value at a time, so a column that repeats its values (dates,
    currencies, SKUs, quantities: tens or hundreds of distinct values in a chunk of 20,000)
    is checked once per distinct value and the answers are spread back to its rows: parsing
    90 distinct dates instead of 20,000 took a 1,000,000-row file's date check from 0.52 to
    0.05 s. A plain text rule (strip and measure) is cheaper than finding the distinct values.
    """
    if _plain_text(rule) or len(raw) < DISTINCT_MIN_ROWS or _mostly_distinct(raw):
        return _check_values(raw, rule)
    codes, distinct = pd.factorize(raw, use_na_sentinel=False)
    if _mostly_distinct(distinct, len(raw)):
        return _check_values(raw, rule)
    values, failures = _check_values(pd.Series(distinct, dtype=raw.dtype), rule)
    spread = [(pd.Series(mask.to_numpy()[codes], index=raw.index), why) for mask, why in failures]
    return _spread(values, codes, raw.index), spread


def _mostly_distinct(values: pd.Series | pd.Index, rows: int | None = None) -> bool:
    """Whether a column's values are mostly distinct, where finding them saves nothing: told
    by the `values` found in `rows` rows, or guessed from the first DISTINCT_SAMPLE_ROWS."""
    if rows is None:
        sample = values[:DISTINCT_SAMPLE_ROWS]
        return len(pd.unique(sample)) * 2 > len(sample)
    return len(values) * 2 > rows


def _spread(values: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """The column of the distinct `values` at each row's code, on the rows' `index`."""
    return pd.Series(values.array.take(codes), index=index, name=values.name)


def _plain_text(rule: ColumnRule) -> bool:
    return rule.kind is Kind.TEXT and not rule.pattern and rule.choices is None


def _check_values(
    raw: pd.Series, rule: ColumnRule
) -> tuple[pd.Series, list[tuple[pd.Series, str]]]:
    """`_check_column` on every value of `raw`, one by one."""
    text = raw.astype(str).str.strip()
    missing = text == ""
    failures: list[tuple[pd.Series, str]] = [(missing, MISSING)]
    present = ~missing
    if rule.kind in (Kind.TEXT, Kind.CODE):
        if rule.kind is Kind.CODE:
            text = text.str.upper()
        too_long = present & (text.str.len() > rule.max_length)
        failures.append((too_long, f"is longer than {rule.max_length} characters"))
        if rule.pattern:
            mismatch = present & ~too_long & ~text.str.fullmatch(rule.pattern)
            failures.append((mismatch, f"is not {rule.pattern_hint or 'valid'}"))
        if rule.choices is not None:
            unknown = present & ~too_long & ~text.isin(rule.choices)
            failures.append((unknown, f"is not {rule.choices_hint or 'an allowed value'}"))
        return text, failures
    if rule.kind is Kind.DATE:
        parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        failures.append((present & parsed.isna(), "is not a date (YYYY-MM-DD)"))
        return text, failures
    number = _numbers(text.where(present))
    not_number = present & number.isna()
    failures.append((not_number, f"is not a {rule.kind.value}"))
    if rule.kind in (Kind.POSITIVE_INT, Kind.NON_NEGATIVE_INT):
        lowest = 1 if rule.kind is Kind.POSITIVE_INT else 0
        wrong = present & ~not_number & ((number < lowest) | (number % 1 != 0))
        failures.append((wrong, f"is not a {rule.kind.value}"))
        return number.fillna(0).astype("int64"), failures
    negative = present & ~not_number & ((number < 0) | ~np.isfinite(number.fillna(0)))
    failures.append((negative, "is not a non-negative number"))
    return number.astype("float64"), failures


def _numbers(text: pd.Series) -> pd.Series:
    """Stripped text (NaN where missing) as float64, NaN where it is not a number.

    Arrow's parser takes a tenth of pd.to_numeric's time but gives up on the whole column at
    the first bad value: then pandas parses it, value by value. Both read the same numbers
    (1e3, +3, .5, inf) and refuse the same non-numbers (1,5, 0x10, 1_000).
    """
    try:
        parsed = pc.cast(pa.array(text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").astype("float64")
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index)
