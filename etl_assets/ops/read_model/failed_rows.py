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
from etl_assets.ledger.schema import jobs, quarantined_row_counts, quarantined_rows
from etl_assets.ops.read_model.common import (
    _after,
    _check_cursor,
    _check_page,
    _count_matching,
    _decode_cursor,
    _encode_cursor,
)


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
    """A page of failed rows and how many match in all.

    `total` is exact unless `total_is_estimate` (a filter other than the status that matches
    more than `EXACT_COUNT_CAP` rows: then it is PostgreSQL's estimate). `next_cursor` gives
    the next page (pass it as `cursor`), None on the last one.
    """

    items: list[FailedRow]
    total: int
    limit: int
    offset: int
    total_is_estimate: bool = False
    has_more: bool = False
    next_cursor: str | None = None


def list_failed_rows(
    engine: Engine,
    filters: FailedRowFilters | None = None,
    *,
    sort: FailedRowSort | str = FailedRowSort.CREATED_AT_DESC,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> FailedRowPage:
    """A page of quarantined rows with their job's dataset and file name.

    Pages after `cursor` (the `next_cursor` of the page before) are read by keyset, off the
    (created_at, id) or (job_id, row_number) index; `offset` (at most MAX_OFFSET) stays for
    small jumps. Raises ValueError for a sort key, limit, offset or cursor out of range.
    """
    _check_page(limit, offset)
    _check_cursor(offset, cursor)
    filters = filters or FailedRowFilters()
    key = FailedRowSort(sort)
    descending = key.value.startswith("-")
    by_time = key.value.lstrip("-") == "created_at"
    q = quarantined_rows.c
    where = _row_conditions(filters)
    joined = quarantined_rows.join(jobs, jobs.c.job_id == q.job_id)
    # Both keys are NOT NULL: plain directions, which PostgreSQL reads straight off the index.
    if by_time:
        order = [q.created_at.desc(), q.id.desc()] if descending else [q.created_at, q.id]
    else:  # a job's rows in file order, whichever way the jobs go
        order = [q.job_id.desc() if descending else q.job_id.asc(), q.row_number.asc()]
    page_where = list(where)
    if cursor:
        value, last = _decode_cursor(cursor, [dt.datetime if by_time else str, int])
        if by_time:
            page_where.append(_after(q.created_at, q.id, value, last, descending))
        else:
            next_job = q.job_id < value if descending else q.job_id > value
            page_where.append(sa.or_(next_job, sa.and_(q.job_id == value, q.row_number > last)))
    stmt = (
        sa.select(quarantined_rows, jobs.c.dataset, jobs.c.source_name)
        .select_from(joined)
        .where(*page_where)
        .order_by(*order)
        .limit(limit + 1)
        .offset(offset)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
        has_more = len(rows) > limit
        rows = rows[:limit]
        if not (has_more or offset or cursor):
            total, estimate = len(rows), False  # the whole list is on this page
        elif _only_status_filter(filters):
            total, estimate = _counted_total(conn, filters.status), False
        else:
            # The join only when the dataset needs it: counting is the rows' index alone.
            source = joined if filters.dataset is not None else quarantined_rows
            total, estimate = _count_matching(conn, source, where)
    items = [_failed_row(r) for r in rows]
    next_cursor = None
    if has_more and items:
        last_item = items[-1]
        key_values = (
            [last_item.created_at, last_item.id]
            if by_time
            else [last_item.job_id, last_item.row_number]
        )
        next_cursor = _encode_cursor(key_values)
    return FailedRowPage(items, total, limit, offset, estimate, has_more, next_cursor)


def _row_conditions(filters: FailedRowFilters) -> list[sa.ColumnElement[bool]]:
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
    return where


def _only_status_filter(filters: FailedRowFilters) -> bool:
    return filters == FailedRowFilters(status=filters.status)


def _counted_total(conn: sa.Connection, status: RowStatus | None) -> int:
    """Rows of this status (or all), from the trigger-kept counts: exact, one row."""
    c = quarantined_row_counts.c
    stmt = sa.select(sa.func.coalesce(sa.func.sum(c.rows), 0))
    if status is not None:
        stmt = stmt.where(c.status == RowStatus(status).value)
    return int(conn.execute(stmt).scalar_one())


def _failed_row(r: sa.RowMapping) -> FailedRow:
    return FailedRow(
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


def failed_row(engine: Engine, row_id: int) -> FailedRow | None:
    """One quarantined row, whatever its status; None when no row has this id."""
    page = list_failed_rows(engine, FailedRowFilters(status=None, row_id=row_id), limit=1)
    return page.items[0] if page.items else None
