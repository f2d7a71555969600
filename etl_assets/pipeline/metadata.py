"""What each asset's materialization records, shared by the asset graph and batch runs."""

from __future__ import annotations

from typing import Any

from etl_assets.ledger import Job
from etl_assets.pipeline.source import SourceRows


def source_metadata(source: SourceRows, source_name: str) -> dict[str, Any]:
    """What a `source_rows` materialization records."""
    return {
        "dagster/row_count": source.chunks.row_count,
        "rows_total": source.rows_total,
        "rows_quarantined": source.rows_quarantined,
        "chunks": source.chunks.chunk_count,
        "source_file": source_name,
    }


def load_metadata(completed: Job) -> dict[str, Any]:
    """What a fact table's materialization records: the job's counters after its load."""
    return {
        "dagster/row_count": completed.rows_loaded,
        "rows_total": completed.rows_total or 0,
        "rows_quarantined": completed.rows_quarantined,
        "rows_duplicate": completed.rows_duplicate,
        "job_id": completed.job_id,
        "load_seconds": (completed.metrics or {}).get("load_seconds", 0.0),
    }
