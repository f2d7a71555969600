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
from etl_assets.pipeline.source import LookupKeys


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
    merged = rows
    unknown: list[tuple[Enrichment, np.ndarray]] = []
    for enrichment in dataset.enrichments:
        merged = merged.merge(
            lookups[enrichment.name], how="left", on=list(enrichment.keys), validate="m:1"
        )
        unknown.append((enrichment, merged[enrichment.returns[0]].isna().to_numpy()))
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


def _rejection(row: pd.Series, dataset: Dataset, failed: list[Enrichment]) -> dict[str, Any]:
    values = {rule.name: str(row[rule.name]) for rule in dataset.columns}
    return {
        "row_number": int(row[ROW_NUMBER]),
        "raw_row": values,
        "reason": "; ".join(enrichment.unknown.format_map(values) for enrichment in failed),
    }
