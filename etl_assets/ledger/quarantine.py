"""Quarantined rows: every input row that could not be loaded, with its line and reason.

A row stays `quarantined` until a retry loads it (`etl failed-rows retry`), when it becomes
`loaded`; it is never deleted with its reason, so what happened to each input row can
always be told.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection, utcnow
from etl_assets.ledger.dialect import dialect_insert
from etl_assets.ledger.schema import quarantined_rows
from etl_assets.ledger.storable import storable, storable_text


class RowStatus(enum.StrEnum):
    """Whether a quarantined row is still out of the warehouse."""

    QUARANTINED = "quarantined"
    LOADED = "loaded"  # a later retry loaded it
    DUPLICATE = "duplicate"  # a later retry found its key already loaded


def add_rows(
    conn: sa.Connection, job_id: str, stage: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rejected rows ({row_number, raw_row, reason}) in the caller's transaction.

    A row already quarantined for this job (a retried step) is left as it is.
    """
    if not rows:
        return
    now = utcnow()
    stmt = dialect_insert(conn, quarantined_rows).on_conflict_do_nothing(
        index_elements=["job_id", "row_number"]
    )
    conn.execute(
        stmt,
        [
            dict(
                job_id=job_id,
                row_number=row["row_number"],
                raw_row=storable(row["raw_row"]),
                reason=storable_text(row["reason"]),
                stage=stage,
                status=RowStatus.QUARANTINED.value,
                created_at=now,
                updated_at=now,
            )
            for row in rows
        ],
    )


def count_open(conn: sa.Connection, job_id: str) -> int:
    """Rows of the job still in quarantine, read in the caller's transaction."""
    stmt = sa.select(sa.func.count()).where(
        quarantined_rows.c.job_id == job_id,
        quarantined_rows.c.status == RowStatus.QUARANTINED.value,
    )
    return int(conn.execute(stmt).scalar_one())


def list_rows(
    engine: Engine,
    *,
    job_id: str | None = None,
    since: dt.datetime | None = None,
    status: RowStatus | None = RowStatus.QUARANTINED,
    ids: Iterable[int] | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Quarantined rows, by job and line, filtered as asked."""
    stmt = sa.select(quarantined_rows).order_by(
        quarantined_rows.c.job_id, quarantined_rows.c.row_number
    )
    if job_id is not None:
        stmt = stmt.where(quarantined_rows.c.job_id == job_id)
    if since is not None:
        stmt = stmt.where(quarantined_rows.c.created_at >= since)
    if status is not None:
        stmt = stmt.where(quarantined_rows.c.status == status.value)
    if ids is not None:
        stmt = stmt.where(quarantined_rows.c.id.in_(list(ids)))
    with read_connection(engine) as conn:
        return [dict(row) for row in conn.execute(stmt.limit(limit)).mappings()]


def record_retry(
    conn: sa.Connection,
    row_id: int,
    *,
    status: RowStatus,
    reason: str,
    raw_row: Mapping[str, str],
) -> None:
    """Count a retry of one row: resolved now (loaded or duplicate), or still quarantined with
    its latest reason and values."""
    now = utcnow()
    values: dict[str, Any] = {
        "retry_count": quarantined_rows.c.retry_count + 1,
        "updated_at": now,
        "raw_row": storable(dict(raw_row)),
        "reason": storable_text(reason),
        "status": status.value,
    }
    if status is not RowStatus.QUARANTINED:
        values["resolved_at"] = now
    conn.execute(sa.update(quarantined_rows).where(quarantined_rows.c.id == row_id).values(values))
