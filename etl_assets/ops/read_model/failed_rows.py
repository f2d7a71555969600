"""Quarantined rows for operators: a filtered, sorted page of them with their job's dataset
and file name, or one row by id.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.db import read_connection
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ledger.schema import jobs, quarantined_rows
from etl_assets.ops.read_model.common import _check_page, _order


class FailedRowSort(enum.StrEnum):
    """Orders `list_failed_rows` accepts; a leading '-' means descending."""

    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    JOB_ID = "job_id"
    JOB_ID_DESC = "-job_id"


@dataclass(frozen=True)
class FailedRowFilters:
    """Which quarantined rows to list; `status` None means every status."""

    job_id: str | None = None
    dataset: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    status: RowStatus | None = RowStatus.QUARANTINED
    row_id: int | None = None


@dataclass(frozen=True)
class FailedRow:
    """A row a job could not load: where it came from, its raw values and why."""

    id: int
    job_id: str
    dataset: str
    source_name: str
    row_number: int
    raw_row: dict[str, Any]
    reason: str
    stage: str
    status: RowStatus
    retry_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True)
class FailedRowPage:
    """A page of failed rows and how many match in all."""

    items: list[FailedRow]
    total: int
    limit: int
    offset: int


def list_failed_rows(
    engine: Engine,
    filters: FailedRowFilters | None = None,
    *,
    sort: FailedRowSort | str = FailedRowSort.CREATED_AT_DESC,
    limit: int = 50,
    offset: int = 0,
) -> FailedRowPage:
    """A page of quarantined rows with their job's dataset and file name."""
    _check_page(limit, offset)
    filters = filters or FailedRowFilters()
    key = FailedRowSort(sort)
    descending = key.value.startswith("-")
    q = quarantined_rows.c
    where: list[sa.ColumnElement[bool]] = []
    if filters.row_id is not None:
        where.append(q.id == filters.row_id)
    if filters.job_id is not None:
        where.append(q.job_id == filters.job_id)
    if filters.dataset is not None:
        where.append(jobs.c.dataset == filters.dataset)
    if filters.created_from is not None:
        where.append(q.created_at >= filters.created_from)
    if filters.created_to is not None:
        where.append(q.created_at < filters.created_to)
    if filters.status is not None:
        where.append(q.status == RowStatus(filters.status).value)
    joined = quarantined_rows.join(jobs, jobs.c.job_id == q.job_id)
    order = (
        [_order(q.created_at, descending), _order(q.id, descending)]
        if key.value.lstrip("-") == "created_at"
        else [_order(q.job_id, descending), q.row_number.asc()]
    )
    stmt = (
        sa.select(quarantined_rows, jobs.c.dataset, jobs.c.source_name)
        .select_from(joined)
        .where(*where)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    with read_connection(engine) as conn:
        count = sa.select(sa.func.count()).select_from(joined).where(*where)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(stmt).mappings().all()
    items = [
        FailedRow(
            id=int(r["id"]),
            job_id=r["job_id"],
            dataset=r["dataset"],
            source_name=r["source_name"],
            row_number=int(r["row_number"]),
            raw_row=dict(r["raw_row"]),
            reason=r["reason"],
            stage=r["stage"],
            status=RowStatus(r["status"]),
            retry_count=r["retry_count"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            resolved_at=r["resolved_at"],
        )
        for r in rows
    ]
    return FailedRowPage(items, total, limit, offset)


def failed_row(engine: Engine, row_id: int) -> FailedRow | None:
    """One quarantined row, whatever its status; None when no row has this id."""
    page = list_failed_rows(engine, FailedRowFilters(status=None, row_id=row_id), limit=1)
    return page.items[0] if page.items else None
