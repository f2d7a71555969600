"""A job's warehouse rows, produced lazily chunk by chunk from the staged source rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from etl_assets.datasets.base import JOB_ID, Dataset, TransformContext
from etl_assets.pipeline.enrich import enrich
from etl_assets.pipeline.prefetch import prefetch
from etl_assets.pipeline.source import SourceRows


def fact_rows(
    dataset: Dataset,
    rows: pd.DataFrame,
    lookups: Mapping[str, pd.DataFrame],
    context: TransformContext,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Enrich and transform valid rows into the dataset's fact rows (its fact table's
    columns, with the job's id); returns them and the rows enrichment rejected."""
    enriched, rejected = enrich(rows, dataset, lookups)
    lines = dataset.transform(enriched, context) if dataset.transform else enriched
    lines[JOB_ID] = context.job_id
    columns = [column.name for column in dataset.fact_table.columns]
    return lines[columns].reset_index(drop=True), rejected


@dataclass(frozen=True)
class TransformedChunk:
    """Warehouse rows of one source chunk and the rows enrichment rejected."""

    index: int
    rows_in: int
    lines: pd.DataFrame
    rejected: list[dict[str, Any]]


@dataclass(frozen=True)
class RowsToLoad:
    """The job's fact rows, transformed only as the warehouse load pulls them.

    Nothing is held beyond one chunk, and a resumed load skips the chunks already committed
    without transforming them again.
    """

    dataset: Dataset
    source: SourceRows
    lookups: Mapping[str, pd.DataFrame]  # enrichment name -> what its API answered
    context: TransformContext

    @property
    def job_id(self) -> str:
        """The job the rows belong to."""
        return self.context.job_id

    @property
    def chunk_count(self) -> int:
        """Chunks the load will go through."""
        return self.source.chunks.chunk_count

    @property
    def rows_valid(self) -> int:
        """Rows that passed validation (all chunks)."""
        return self.source.chunks.row_count

    @property
    def rows_quarantined_at_validation(self) -> int:
        """Rows validation quarantined: they never reach the load."""
        return self.source.rows_quarantined

    def chunks(self, start: int = 0, *, prefetched: bool = True) -> Iterator[TransformedChunk]:
        """Transform and yield chunks `start`, `start + 1`, ... in order. `prefetched`: the
        next chunk is transformed in the background while the caller loads this one (a
        load that writes chunks ahead on its own threads overlaps the transform already,
        and holds one chunk less without it)."""
        transformed = self._transformed(start)
        return prefetch(transformed) if prefetched else transformed

    def _transformed(self, start: int) -> Iterator[TransformedChunk]:
        for index in range(start, self.chunk_count):
            rows = self.source.chunks.read(index)
            lines, rejected = fact_rows(self.dataset, rows, self.lookups, self.context)
            yield TransformedChunk(index, len(rows), lines, rejected)
