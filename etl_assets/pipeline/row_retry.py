"""Retry quarantined rows of completed jobs, after the reference data or the row was fixed.

Each selected row is validated and enriched again, like the job's own rows. Rows that now pass
are loaded into the warehouse under their original job and line (so lineage holds) and leave
quarantine as `loaded`, or as `duplicate` when their key is already there; the job's counters
move with them in the same transaction, so rows in = loaded + quarantined + duplicate still
holds. Rows that still fail stay quarantined with their latest reason. Every try counts in the
row's `retry_count`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets import get_dataset
from etl_assets.datasets.base import ROW_NUMBER, TransformContext
from etl_assets.ledger import Job, JobStatus, Ledger, quarantine
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.pipeline.csv_source import read_header
from etl_assets.pipeline.enrich import look_up
from etl_assets.pipeline.transform import fact_rows
from etl_assets.pipeline.validation import validate_chunk
from etl_assets.warehouse.bulk import upsert_rows
from etl_assets.warehouse.parsed import dispatch_after_commit, record_rows_parsed


@dataclass
class RowRetryResult:
    """What happened to each quarantined row that was asked for."""

    loaded: list[int] = field(default_factory=list)
    duplicate: list[int] = field(default_factory=list)
    still_failing: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnrichmentClients:
    """The API clients (by resource key) and reporting currency a retry enriches rows with."""

    clients: Mapping[str, Any]
    reporting_currency: str


def retry_rows(
    ledger: Ledger,
    enrichment: EnrichmentClients,
    *,
    row_ids: Iterable[int] | None = None,
    job_id: str | None = None,
    fixes: Mapping[str, str] | None = None,
) -> RowRetryResult:
    """Retry the quarantined rows with `row_ids`, or all of `job_id`'s; commits per job.

    `fixes` ({column: value}) are applied to every selected row before it is validated.
    """
    rows = quarantine.list_rows(
        ledger.engine, job_id=job_id, ids=list(row_ids) if row_ids is not None else None
    )
    result = RowRetryResult()
    for jid in sorted({row["job_id"] for row in rows}):
        job = ledger.get(jid)
        mine = [row for row in rows if row["job_id"] == jid]
        if job.status is not JobStatus.COMPLETED:
            why = f"job {jid} is {job.status}: retry the job itself (`etl retry {jid}`)"
            result.skipped.update({row["id"]: why for row in mine})
            continue
        _retry_job_rows(ledger, enrichment, job, mine, dict(fixes or {}), result)
    return result


def _retry_job_rows(
    ledger: Ledger,
    enrichment: EnrichmentClients,
    job: Job,
    rows: list[dict[str, Any]],
    fixes: dict[str, str],
    result: RowRetryResult,
) -> None:
    dataset = get_dataset(job.dataset)
    columns = read_header(Path(job.source_uri), dataset.required_columns, job.source_name)
    raw_rows = {row["id"]: _as_columns(row["raw_row"], columns) | fixes for row in rows}
    reasons: dict[int, str] = {}
    frame = pd.DataFrame(
        [{c: raw.get(c, "") for c in columns} for raw in raw_rows.values()], columns=columns
    )
    frame[ROW_NUMBER] = [row["row_number"] for row in rows]
    by_line = {row["row_number"]: row["id"] for row in rows}

    checked = validate_chunk(frame, dataset.columns)
    for rejected in checked.rejected:
        reasons[by_line[rejected["row_number"]]] = rejected["reason"]
    lines = pd.DataFrame()
    if not checked.valid.empty:
        valid = checked.valid
        context = TransformContext(
            job_id=job.job_id, reporting_currency=enrichment.reporting_currency
        )
        lookups = {
            e.name: look_up(
                e,
                enrichment.clients[e.resource],
                frozenset(valid[list(e.keys)].itertuples(index=False, name=None)),
                context,
            )
            for e in dataset.enrichments
        }
        lines, enrich_rejected = fact_rows(dataset, valid, lookups, context)
        for rejected in enrich_rejected:
            reasons[by_line[rejected["row_number"]]] = rejected["reason"]

    with ledger.engine.begin() as conn:
        duplicates = _already_loaded(conn, dataset.fact_table, dataset.natural_key, lines)
        counts = upsert_rows(
            conn,
            dataset.fact_table,
            dataset.natural_key,
            lines,
            dimensions=dataset.dimensions,
        )
        for line in lines[ROW_NUMBER].tolist() if not lines.empty else []:
            row_id = by_line[line]
            status = RowStatus.DUPLICATE if line in duplicates else RowStatus.LOADED
            (result.duplicate if line in duplicates else result.loaded).append(row_id)
            quarantine.record_retry(
                conn, row_id, status=status, reason="loaded on retry", raw_row=raw_rows[row_id]
            )
        for row_id, reason in reasons.items():
            result.still_failing[row_id] = reason
            quarantine.record_retry(
                conn, row_id, status=RowStatus.QUARANTINED, reason=reason, raw_row=raw_rows[row_id]
            )
        ledger.move_recovered_rows(
            conn, job.job_id, loaded=counts.loaded, duplicate=counts.duplicate
        )
        # Downstream tables learn of the rows through the same event as a job's load.
        event_id = (
            None
            if lines.empty
            else record_rows_parsed(conn, dataset, ledger.get(job.job_id, conn), lines)
        )
    if event_id is not None:
        dispatch_after_commit(ledger.engine, event_id)


def _as_columns(raw_row: Mapping[str, str], columns: list[str]) -> dict[str, str]:
    """The row as {column: value}; a malformed record ({"line": ...}) is split again."""
    if set(raw_row) != {"line"}:
        return dict(raw_row)
    [fields] = list(csv.reader([raw_row["line"]]))
    return dict(zip(columns, fields, strict=False))


def _already_loaded(
    conn: sa.Connection, table: sa.Table, key: tuple[str, ...], lines: pd.DataFrame
) -> set[int]:
    """Lines (ROW_NUMBER) whose natural key the warehouse holds from another line or job."""
    if lines.empty:
        return set()
    wanted = {
        tuple(k): n
        for k, n in zip(lines[list(key)].itertuples(index=False), lines[ROW_NUMBER], strict=True)
    }
    columns = [table.c[k] for k in key]
    stmt = sa.select(*columns, table.c.job_id, table.c.source_row).where(
        sa.tuple_(*columns).in_(list(wanted))
    )
    found = set()
    for row in conn.execute(stmt):
        line = wanted[tuple(row[: len(key)])]
        if not (row.job_id == lines["job_id"].iat[0] and row.source_row == line):
            found.add(line)
    return found
