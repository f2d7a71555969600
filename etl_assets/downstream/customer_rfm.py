"""`customer_rfm`: recency, frequency, monetary value, 1-5 scores and a segment per customer,
from the sales of completed jobs.

Per customer, `last_order_date`, `frequency` (distinct orders) and `monetary` (revenue in the
reporting currency) are recomputed for the customers new loads touched; recency (days before
the latest order date in the table, so a rerun gives the same answer), the quintile scores
and the segment are relative to all customers, so they are rescored set-based over
`customer_rfm` (one row per customer, not per order line) on every refresh.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.common import MONEY
from etl_assets.datasets.sales import sales_fact
from etl_assets.db import UTCDateTime, is_postgres, metadata
from etl_assets.downstream.base import Downstream, absorbed_facts, insert_from, now_column

customer_rfm = sa.Table(
    "customer_rfm",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("last_order_date", sa.Date, nullable=False),
    sa.Column("frequency", sa.Integer, nullable=False),
    sa.Column("monetary", MONEY, nullable=False),
    sa.Column("reporting_currency", sa.String(3), nullable=False),
    sa.Column("recency_days", sa.Integer),
    sa.Column("r_score", sa.Integer),
    sa.Column("f_score", sa.Integer),
    sa.Column("m_score", sa.Integer),
    sa.Column("segment", sa.String(32)),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_customer_rfm_segment", "segment"),
)

# Segment rules on the 1-5 scores (5 = most recent, most frequent, highest spend), first match.
SEGMENTS = (
    ("champions", "s.r >= 4 AND s.f >= 4"),
    ("loyal", "s.r >= 3 AND s.f >= 3"),
    ("new", "s.r >= 4"),
    ("at_risk", "s.r <= 2 AND s.f >= 3"),
    ("hibernating", "s.r <= 2"),
)
OTHER_SEGMENT = "needs_attention"
# The columns each recompute's SELECT fills, in its order; scores come from the rescoring.
COLUMNS = [
    "customer_id",
    "last_order_date",
    "frequency",
    "monetary",
    "reporting_currency",
    "updated_at",
]


def recompute(conn: sa.Connection, customers: sa.Select[Any] | None, up_to: int) -> int:
    """Delete and rebuild the rows of `customers` (None: all) from the absorbed sales."""
    f = sales_fact.c
    delete = customer_rfm.delete()
    select = absorbed_facts(sales_fact, up_to).add_columns(
        f.customer_id,
        sa.func.max(f.order_date),
        sa.func.count(sa.distinct(f.order_id)),
        sa.func.sum(f.amount_reporting),
        sa.func.max(f.reporting_currency),
        now_column(),
    )
    if customers is not None:
        delete = delete.where(customer_rfm.c.customer_id.in_(customers))
        select = select.where(f.customer_id.in_(customers))
    conn.execute(delete)
    return insert_from(conn, customer_rfm, COLUMNS, select.group_by(f.customer_id))


def rescore(conn: sa.Connection) -> None:
    """Recency, quintile scores and segment of every customer, in one UPDATE."""
    as_of = conn.execute(sa.select(sa.func.max(customer_rfm.c.last_order_date))).scalar()
    if as_of is None:
        return
    recency = (
        "(CAST(:as_of AS DATE) - customer_rfm.last_order_date)"
        if is_postgres(conn)
        else "CAST(julianday(:as_of) - julianday(customer_rfm.last_order_date) AS INTEGER)"
    )
    segment = " ".join(f"WHEN {rule} THEN '{name}'" for name, rule in SEGMENTS)
    conn.execute(
        sa.text(
            f"UPDATE customer_rfm SET recency_days = {recency}, "
            "r_score = s.r, f_score = s.f, m_score = s.m, "
            f"segment = CASE {segment} ELSE '{OTHER_SEGMENT}' END "
            "FROM (SELECT customer_id, "
            "NTILE(5) OVER (ORDER BY last_order_date, customer_id) AS r, "
            "NTILE(5) OVER (ORDER BY frequency, customer_id) AS f, "
            "NTILE(5) OVER (ORDER BY monetary, customer_id) AS m "
            "FROM customer_rfm) AS s "
            "WHERE customer_rfm.customer_id = s.customer_id"
        ),
        {"as_of": as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of)},
    )


CUSTOMER_RFM = Downstream(
    table=customer_rfm,
    consumes=("sales",),
    scope="customers",
    scope_type=sa.String(64),
    recompute=recompute,
    after=rescore,
    description=(
        "Recency, frequency, monetary value, 1-5 scores and an RFM segment per customer; "
        "aggregates recomputed for the customers new jobs touched, scores for everyone."
    ),
)
