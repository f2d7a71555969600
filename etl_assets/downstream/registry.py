"""The downstream tables, in the order a refresh builds them (a table after those it reads)."""

from __future__ import annotations

import sqlalchemy as sa

from etl_assets.downstream.base import Downstream, watermark
from etl_assets.downstream.customer_rfm import CUSTOMER_RFM
from etl_assets.downstream.daily_sales import DAILY_SALES
from etl_assets.downstream.stock_cover import STOCK_COVER
from etl_assets.events.store import events

DOWNSTREAM: tuple[Downstream, ...] = (DAILY_SALES, CUSTOMER_RFM, STOCK_COVER)


def consumers_of(dataset: str) -> list[Downstream]:
    """The downstream tables that absorb `dataset`'s loads."""
    return [table for table in DOWNSTREAM if dataset in table.consumes]


def absorbed_by_consumers(conn: sa.Connection) -> sa.ColumnElement[bool]:
    """The condition of the events every downstream table consuming their dataset has
    absorbed (an event of a dataset no table consumes is absorbed): they may go without any
    table missing what they named."""
    consumed = sorted({name for table in DOWNSTREAM for name in table.consumes})
    marks = {table.name: watermark(conn, table.name) for table in DOWNSTREAM}
    absorbed: list[sa.ColumnElement[bool]] = [
        events.c.dataset.is_(None),
        events.c.dataset.not_in(consumed),
    ]
    for dataset in consumed:
        mark = min(marks[table.name] for table in consumers_of(dataset))
        absorbed.append(sa.and_(events.c.dataset == dataset, events.c.id <= mark))
    return sa.or_(*absorbed)
