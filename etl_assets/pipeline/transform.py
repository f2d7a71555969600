"""The job's warehouse rows, produced lazily chunk by chunk from the staged source rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from etl_assets.datasets.sales import transform_sales
from etl_assets.pipeline.prefetch import prefetch
from etl_assets.pipeline.source import SourceRows


@dataclass(frozen=True)
class TransformedChunk:
    """Warehouse rows of one source chunk and the rows enrichment rejected."""

    index: int
    rows_in: int
    lines: pd.DataFrame
    rejected: list[dict[str, Any]]


@dataclass(frozen=True)
class SalesLinesToLoad:
    """The job's sales fact rows, transformed only as the warehouse IO manager pulls them.

    Nothing is held beyond one chunk, and a resumed load skips the chunks already committed
    without transforming them again.
    """

    job_id: str
    source: SourceRows
    fx_rates: pd.DataFrame
    products: pd.DataFrame
    reporting_currency: str

    @property
    def chunk_count(self) -> int:
        """Chunks the load will go through."""
        return self.source.chunks.chunk_count

    def chunks(self, start: int = 0) -> Iterator[TransformedChunk]:
        """Transform and yield chunks `start`, `start + 1`, ... in order; the next chunk is
        transformed in the background while the caller loads this one."""
        return prefetch(self._transformed(start))

    def _transformed(self, start: int) -> Iterator[TransformedChunk]:
        for index in range(start, self.chunk_count):
            rows = self.source.chunks.read(index)
            lines, rejected = transform_sales(
                rows,
                self.fx_rates,
                self.products,
                job_id=self.job_id,
                reporting_currency=self.reporting_currency,
            )
            yield TransformedChunk(index, len(rows), lines, rejected)
