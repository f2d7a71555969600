"""Load one job's rows into the warehouse, chunk by chunk, and complete the job.

Each chunk commits in one transaction with its quarantined rows and the job's checkpoint, so a
retried or resumed load continues after the last committed chunk. On PostgreSQL the next
chunk's fact rows are written on a second connection while a chunk commits
(`write_ahead.ChunkWrites`); the chunks still commit in file order. The job's move to
`completed` (with its counters and metrics) commits in the load's last transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any, Protocol

import pandas as pd

from etl_assets.datasets.base import Dataset
from etl_assets.db import is_postgres
from etl_assets.ledger import Job, Ledger, quarantine
from etl_assets.runs.tracking import Heartbeat
from etl_assets.warehouse.bulk import UpsertCounts, upsert_dimensions, upsert_facts
from etl_assets.warehouse.parsed import collect_touched, record_transaction_parsed
from etl_assets.warehouse.write_ahead import ChunkWrites

ENRICH_STAGE = "enrich"
# Chunks whose fact rows are written while the one before them commits (PostgreSQL): one, so
# two server processes share the work on two cores (warehouse/write_ahead.py).
WRITE_AHEAD = 1


class ChunkToLoad(Protocol):
    """One chunk of fact rows, and the rows enrichment rejected from it."""

    @property
    def index(self) -> int: ...
    @property
    def rows_in(self) -> int: ...
    @property
    def lines(self) -> pd.DataFrame: ...
    @property
    def rejected(self) -> list[dict[str, Any]]: ...


class RowsToLoad(Protocol):
    """A job's fact rows as the pipeline hands them over (pipeline.transform.RowsToLoad)."""

    @property
    def dataset(self) -> Dataset: ...
    @property
    def chunk_count(self) -> int: ...
    @property
    def rows_valid(self) -> int: ...
    @property
    def rows_quarantined_at_validation(self) -> int: ...
    def chunks(self, start: int = 0, *, prefetched: bool = True) -> Iterator[ChunkToLoad]: ...


def resume_point(job: Job, lines: RowsToLoad) -> dict[str, Any]:
    """The checkpoint to continue from, or a fresh one when it belongs to another chunking."""
    fresh = {
        "chunks_total": lines.chunk_count,
        "chunks_done": 0,
        "rows_in": 0,
        "rows_loaded": 0,
        "rows_duplicate": 0,
        "source_rows_valid": lines.rows_valid,
    }
    saved = job.checkpoint or {}
    same_input = (
        saved.get("chunks_total") == fresh["chunks_total"]
        and saved.get("source_rows_valid") == fresh["source_rows_valid"]
    )
    return dict(saved) if same_input else fresh


def load_job(ledger: Ledger, job: Job, run_id: str, lines: RowsToLoad, heartbeat: Heartbeat) -> Job:
    """Load every chunk not yet committed, then complete the job and record its
    `transaction.parsed` event; returns the completed job."""
    dataset = lines.dataset
    checkpoint = resume_point(job, lines)
    resumed_from = checkpoint["chunks_done"]
    started = time.perf_counter()
    rows_this_run = 0
    # What the job's event names, collected as the rows go by when this run loads them all.
    seen: dict[str, set[str]] | None = {} if resumed_from == 0 else None
    ahead = WRITE_AHEAD if is_postgres(ledger.engine) else 0
    writes: ChunkWrites[ChunkToLoad, tuple[UpsertCounts, pd.DataFrame]] = ChunkWrites(
        ledger.engine,
        lambda conn, chunk: upsert_facts(
            conn, dataset.fact_table, dataset.natural_key, chunk.lines
        ),
        ahead=ahead,
        keys=lambda chunk: chunk.lines[list(dataset.natural_key)],
    )
    # Writing ahead, the next chunk is transformed while the one before it is written.
    chunks = lines.chunks(start=resumed_from, prefetched=ahead == 0)
    # closing: whatever stops the loop, the chunks still open are rolled back right there.
    with closing(writes.settled(chunks)) as settled:
        for written in settled:
            chunk, conn = written.chunk, written.conn
            counts, first_lines = written.result  # first_lines: the first line of each key
            if seen is not None:
                collect_touched(seen, chunk.lines, dataset.event_keys)
            # The rest of the chunk's transaction, in file order: its rows enrichment rejected,
            # the dimension rows its facts imply, and the checkpoint that says it is loaded.
            quarantine.add_rows(conn, job.job_id, ENRICH_STAGE, chunk.rejected)
            upsert_dimensions(conn, dataset.dimensions, first_lines)
            rows_this_run += chunk.rows_in
            checkpoint = checkpoint | {
                "chunks_done": chunk.index + 1,
                "rows_in": checkpoint["rows_in"] + chunk.rows_in,
                "rows_loaded": checkpoint["rows_loaded"] + counts.loaded,
                "rows_duplicate": checkpoint["rows_duplicate"] + counts.duplicate,
            }
            ledger.save_checkpoint(
                conn,
                job.job_id,
                run_id,
                checkpoint,
                rows_processed=_processed(lines, checkpoint),
                rows_loaded=checkpoint["rows_loaded"],
                rows_duplicate=checkpoint["rows_duplicate"],
            )
            written.commit()
            # The chunk's rows go before the next one is transformed.
            del written, chunk, conn, first_lines
            heartbeat.check()
    seconds = time.perf_counter() - started
    metrics = {
        "load_seconds": round(seconds, 3),
        "chunks": lines.chunk_count,
        "resumed_from_chunk": resumed_from,
        "rows_per_second": round(rows_this_run / seconds) if seconds > 0 else None,
    }
    with ledger.engine.begin() as conn:
        completed = ledger.complete(
            conn,
            job.job_id,
            run_id,
            rows_loaded=checkpoint["rows_loaded"],
            rows_duplicate=checkpoint["rows_duplicate"],
            metrics=metrics,
        )
        # The event commits with the completion; the IO manager runs its handlers after
        # the step (parsed.dispatch_job_events).
        record_transaction_parsed(conn, dataset, completed, seen)
    return completed


def _processed(lines: RowsToLoad, checkpoint: dict[str, Any]) -> int:
    # Rows quarantined at validation never reach the load; count them as processed too.
    return int(checkpoint["rows_in"]) + lines.rows_quarantined_at_validation
