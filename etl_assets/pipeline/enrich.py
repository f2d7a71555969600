"""Enrichment: look up a job's distinct keys in an API once, then join the answers to its rows.

`look_up` runs in the enrichment's own asset (one API round per job, whatever its size);
`enrich` joins every enrichment's answers to a chunk of rows and quarantines the rows whose
key an API did not know, with the reason the enrichment declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from etl_assets.datasets.base import ROW_NUMBER, Dataset, Enrichment, TransformContext
from etl_assets.pipeline.source import LookupKeys, key_codes


def look_up(
    enrichment: Enrichment, client: Any, keys: LookupKeys, context: TransformContext
) -> pd.DataFrame:
    """What the API answers for the distinct `keys`: the key columns and the enrichment's
    `returns` columns, one row per key it knows."""
    columns = list(enrichment.keys)
    wanted = pd.DataFrame(sorted(keys), columns=columns)
    if wanted.empty:
        return pd.DataFrame(columns=[*columns, *enrichment.returns])
    found = enrichment.lookup(client, wanted, context)
    return found[[*columns, *enrichment.returns]].drop_duplicates(columns, keep="last")


def enrich(
    rows: pd.DataFrame, dataset: Dataset, lookups: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """`rows` with every enrichment's columns, and the rows rejected because an API did not
    know their key ({row_number, raw_row, reason}, every failing enrichment named)."""
    merged = rows.reset_index(drop=True)
    unknown: list[tuple[Enrichment, np.ndarray]] = []
    for enrichment in dataset.enrichments:
        positions = _lookup_positions(merged, enrichment, lookups[enrichment.name])
        answers = lookups[enrichment.name]
        merged = merged.assign(
            **{
                column: pd.Series(
                    pd.api.extensions.take(answers[column].array, positions, allow_fill=True),
                    index=merged.index,
                )
                for column in enrichment.returns
            }
        )
        unknown.append((enrichment, positions < 0))
    if not unknown:
        return merged, []
    failing = np.logical_or.reduce([mask for _, mask in unknown])
    if not failing.any():
        return merged, []  # copy-on-write: nothing is copied when no row is filtered out
    rejected = [
        _rejection(merged.iloc[position], dataset, [e for e, mask in unknown if mask[position]])
        for position in np.flatnonzero(failing)
    ]
    return merged[~failing], rejected


def _lookup_positions(
    rows: pd.DataFrame, enrichment: Enrichment, answers: pd.DataFrame
) -> np.ndarray:
    """Per row, the position of the answer to its key in `answers` (-1: none): a left join
    on the enrichment's keys, looked up once per distinct key of the rows rather than by
    `DataFrame.merge` (a third of the transform's time on a 1,000,000-row job)."""
    keys = list(enrichment.keys)
    at = {key: position for position, key in enumerate(answers[keys].itertuples(False, None))}
    if len(at) != len(answers):
        raise ValueError(f"{enrichment.name}: the answers hold a key twice")
    codes, distinct = key_codes(rows, keys)
    found = np.array([at.get(key, -1) for key in distinct], dtype=np.intp)
    return found[codes]


def _rejection(row: pd.Series, dataset: Dataset, failed: list[Enrichment]) -> dict[str, Any]:
    values = {rule.name: str(row[rule.name]) for rule in dataset.columns}
    return {
        "row_number": int(row[ROW_NUMBER]),
        "raw_row": values,
        "reason": "; ".join(enrichment.unknown.format_map(values) for enrichment in failed),
    }
