"""Read and validate a job's CSV file: valid rows to staged chunks, invalid rows to quarantine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from etl_assets.datasets import Dataset
from etl_assets.errors import PermanentError
from etl_assets.ledger import Job, Ledger, quarantine
from etl_assets.pipeline.csv_source import CsvLimits, read_chunks, read_header
from etl_assets.pipeline.validation import validate_chunk
from etl_assets.resources.staging import ChunkWriter, StagedChunks, staged_as_json
from etl_assets.runs.tracking import Heartbeat

VALIDATE_STAGE = "validate"
# Records read and validated at a time, in chunks: each pandas operation costs about 0.1 ms
# whatever its size, and reading and checking 20,000 records took about a hundred of them.
# More at once is faster still (five: the step's own time 4.3 to 2.8 s on 1,000,000 rows)
# but holds more: peak memory without the libraries 165 MB at one, 170 at two, 183 at three,
# 204 at five (docs/performance.md). The valid rows are staged, and loaded, in chunks of
# CHUNK_ROWS whatever this is.
CHUNKS_PER_READ = 2
LookupKeys = frozenset[tuple[Any, ...]]


@staged_as_json
@dataclass(frozen=True)
class SourceRows:
    """The job's valid rows (staged in chunks) and, per enrichment, the distinct keys of its
    rows to look up. Staged as JSON (see `to_json`)."""

    chunks: StagedChunks
    rows_total: int
    rows_quarantined: int
    lookup_keys: Mapping[str, LookupKeys]  # enrichment name -> distinct values of its keys

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON; key values keep their type (timestamps are tagged)."""
        return {
            "chunks": self.chunks.to_json(),
            "rows_total": self.rows_total,
            "rows_quarantined": self.rows_quarantined,
            "lookup_keys": {
                name: [[_key_to_json(value) for value in key] for key in sorted(keys, key=repr)]
                for name, keys in self.lookup_keys.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The manifest `to_json` gave."""
        return cls(
            StagedChunks.from_json(data["chunks"]),
            int(data["rows_total"]),
            int(data["rows_quarantined"]),
            {
                name: frozenset(tuple(_key_from_json(value) for value in key) for key in keys)
                for name, keys in data["lookup_keys"].items()
            },
        )


def _key_to_json(value: Any) -> Any:
    """A lookup key's value as JSON: scalars as they are, a timestamp or date tagged."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dt.datetime):  # pd.Timestamp too
        return {"timestamp": pd.Timestamp(value).isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a lookup key of type {type(value).__name__} cannot be staged as JSON")


def _key_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "timestamp" in value:
            return pd.Timestamp(value["timestamp"])
        return dt.date.fromisoformat(value["date"])
    return value


def stage_source_rows(
    ledger: Ledger,
    dataset: Dataset,
    job: Job,
    run_id: str,
    writer: ChunkWriter,
    *,
    chunk_rows: int,
    limits: CsvLimits,
    heartbeat: Heartbeat,
) -> SourceRows:
    """Validate the job's file chunk by chunk; commits quarantined rows and the row total.

    Raises PermanentError when the file cannot be used at all: missing, empty, not CSV, a
    required column missing, or not one valid row in it.
    """
    path = Path(job.source_uri)
    if not path.is_file():
        raise PermanentError(f"{job.source_name}: the source file {path} is gone")
    columns = read_header(path, dataset.required_columns, job.source_name, limits)

    total = quarantined = 0
    keys: dict[str, set[tuple[Any, ...]]] = {e.name: set() for e in dataset.enrichments}
    block_rows = chunk_rows * CHUNKS_PER_READ
    for raw in read_chunks(path, columns, block_rows, job.source_name, limits):
        checked = validate_chunk(raw.frame, dataset.columns)
        rejected = raw.malformed + checked.rejected
        if rejected:
            with ledger.engine.begin() as conn:
                quarantine.add_rows(conn, job.job_id, VALIDATE_STAGE, rejected)
        valid = checked.valid
        for start in range(0, len(valid), chunk_rows):  # staged (and loaded) chunk by chunk
            writer.write(valid.iloc[start : start + chunk_rows].reset_index(drop=True))
        for enrichment in dataset.enrichments:
            keys[enrichment.name].update(distinct_rows(valid, enrichment.keys))
        total += raw.rows_read
        quarantined += len(rejected)
        heartbeat.check()

    if total == 0:
        raise PermanentError(
            f"{job.source_name}: no data rows under the header (line 1); the file holds "
            "only its header"
        )
    ledger.set_rows_total(job.job_id, run_id, total)
    if quarantined == total:
        raise PermanentError(
            f"{job.source_name}: all {total} rows are invalid; "
            f"see `etl failed-rows list --job {job.job_id}` for each row's reason"
        )
    lookup_keys = {name: frozenset(values) for name, values in keys.items()}
    return SourceRows(writer.finish(), total, quarantined, lookup_keys)


def distinct_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The distinct combinations of `columns` in `frame`, as tuples of Python values, in
    the order they first appear."""
    return key_codes(frame, columns)[1]


def key_codes(
    frame: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Each row's code and the distinct combinations of `columns` the codes stand for (as
    tuples of Python values, in the order they first appear): row i holds `distinct[code[i]]`.

    By each column's codes (`pd.factorize`) rather than `drop_duplicates` and `itertuples`:
    a chunk has tens or hundreds of distinct keys among its thousands of rows, and this
    builds tuples for those only (a 1,000,000-row file's keys: 0.55 to 0.2 s)."""
    factorized = [pd.factorize(frame[column], use_na_sentinel=False) for column in columns]
    if len(factorized) == 1:
        codes, distinct = factorized[0]
        return codes, [(value,) for value in distinct.tolist()]
    # Factorized again at each step, so the combined codes stay below the row count; codes
    # are given in order of first appearance, so code k first appears at first[k].
    combined = factorized[0][0].astype(np.int64)
    for codes, distinct in factorized[1:]:
        combined = pd.factorize(combined * len(distinct) + codes)[0]
    _, first = np.unique(combined, return_index=True)
    picked = [distinct.take(codes[first]).tolist() for codes, distinct in factorized]
    return combined, list(zip(*picked, strict=True))
