"""What the warehouse checks verify, as SQL: each function returns the offending keys.

Each verification is one or two set-based queries over the whole table (no per-row Python):
a count of the offending rows (or keys) and a sample of at most `SAMPLE` of them, for the
asset check's metadata. `etl_assets.assets.checks` turns them into Dagster asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.sales import dim_customer, dim_product, sales_fact
from etl_assets.downstream.tables import absorbed_facts, daily_sales, watermark
from etl_assets.ledger.schema import jobs, pruned_jobs

SAMPLE = 20
# Rows of these jobs may be in the fact table while the job loads (chunks commit one by one).
IN_FLIGHT = ("processing", "pending")
# Money is stored with 4 decimals; sums over many rows may differ in the last places (floats
# on SQLite), so totals agree when they are within a cent.
TOLERANCE = 0.01


@dataclass
class Finding:
    """Offending keys: how many in all, a sample, and figures that explain the check."""

    count: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when nothing offends."""
        return self.count == 0


def _finding(conn: sa.Connection, offending: sa.Select[Any], order: list[Any]) -> Finding:
    """Count the rows of `offending` and sample the first SAMPLE of them in `order`."""
    subquery = offending.subquery()
    count = conn.execute(sa.select(sa.func.count()).select_from(subquery)).scalar_one()
    rows = conn.execute(offending.order_by(*order).limit(SAMPLE)).mappings()
    return Finding(int(count), [{k: _plain(v) for k, v in row.items()} for row in rows])


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str) or value is None else str(value)


def facts_without_dimensions(conn: sa.Connection) -> Finding:
    """Fact rows whose product is not in dim_product or customer not in dim_customer."""
    f = sales_fact.c
    no_product = ~sa.exists().where(dim_product.c.sku == f.sku)
    no_customer = ~sa.exists().where(dim_customer.c.customer_id == f.customer_id)
    offending = sa.select(
        f.order_id,
        f.sku,
        f.customer_id,
        f.job_id,
        no_product.label("product_missing"),
        no_customer.label("customer_missing"),
    ).where(sa.or_(no_product, no_customer))
    return _finding(conn, offending, [f.order_id, f.sku])


def facts_of_unfinished_jobs(conn: sa.Connection) -> Finding:
    """Jobs (with their fact rows) that put rows in the warehouse but are not completed:
    failed, cancelled, or not in the ledger at all (a job `etl prune` removed counts by its
    tombstone). Jobs still loading are left out (their rows are counted in the figures):
    their chunks commit before they complete."""
    f = sales_fact.c
    status = sa.func.coalesce(jobs.c.status, pruned_jobs.c.status)
    per_job = (
        sa.select(f.job_id, status.label("status"), sa.func.count().label("rows"))
        .select_from(
            sales_fact.outerjoin(jobs, jobs.c.job_id == f.job_id).outerjoin(
                pruned_jobs, pruned_jobs.c.job_id == f.job_id
            )
        )
        .group_by(f.job_id, status)
    )
    bad = per_job.where(sa.or_(status.is_(None), status.not_in(["completed", *IN_FLIGHT])))
    finding = _finding(conn, bad, [f.job_id])
    in_flight = per_job.where(status.in_(IN_FLIGHT)).subquery()
    finding.figures["rows_of_jobs_in_flight"] = int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.sum(in_flight.c.rows), 0))).scalar_one()
    )
    return finding


def unbalanced_jobs(conn: sa.Connection) -> Finding:
    """Completed jobs whose rows in differ from loaded + quarantined + duplicate."""
    j = jobs.c
    accounted = j.rows_loaded + j.rows_quarantined + j.rows_duplicate
    offending = sa.select(
        j.job_id,
        j.rows_total,
        j.rows_loaded,
        j.rows_quarantined,
        j.rows_duplicate,
    ).where(
        j.status == "completed",
        sa.or_(j.rows_total.is_(None), j.rows_total != accounted),
    )
    return _finding(conn, offending, [j.job_id])


def duplicate_natural_keys(conn: sa.Connection) -> Finding:
    """Natural keys (order_id, sku) held by more than one fact row."""
    f = sales_fact.c
    offending = (
        sa.select(f.order_id, f.sku, sa.func.count().label("rows"))
        .group_by(f.order_id, f.sku)
        .having(sa.func.count() > 1)
    )
    return _finding(conn, offending, [f.order_id, f.sku])


def facts_without_fx(conn: sa.Connection, reporting_currency: str) -> Finding:
    """Fact rows with no usable FX conversion: no or a non-positive rate, no reporting
    amount, a reporting amount that is not amount x rate, or another reporting currency."""
    f = sales_fact.c
    offending = sa.select(
        f.order_id,
        f.sku,
        f.currency,
        f.fx_rate,
        f.amount,
        f.amount_reporting,
        f.reporting_currency,
        f.job_id,
    ).where(
        sa.or_(
            f.fx_rate.is_(None),
            f.fx_rate <= 0,
            f.fx_date.is_(None),
            f.amount_reporting.is_(None),
            f.reporting_currency.is_(None),
            f.reporting_currency != reporting_currency,
            sa.func.abs(f.amount_reporting - f.amount * f.fx_rate) > TOLERANCE,
        )
    )
    return _finding(conn, offending, [f.order_id, f.sku])


def totals_disagree(conn: sa.Connection) -> Finding:
    """Products whose fact lines (of the completed jobs daily_sales has absorbed) do not sum
    to their aggregate in daily_sales: revenue, units or lines."""
    absorbed_up_to = watermark(conn, "daily_sales")
    # The rows the refresh up to the watermark took in, counted the way it counts them. A
    # pruned job's events may be gone: `etl prune` deletes only absorbed ones.
    f, d = sales_fact.c, daily_sales.c
    facts = (
        absorbed_facts(absorbed_up_to)
        .add_columns(
            f.sku.label("sku"),
            sa.func.sum(f.amount_reporting).label("revenue"),
            sa.func.sum(f.quantity).label("units"),
            sa.func.count().label("lines"),
            sa.literal(0).label("side"),
        )
        .group_by(f.sku)
    )
    aggregates = sa.select(
        d.sku.label("sku"),
        sa.func.sum(d.revenue).label("revenue"),
        sa.func.sum(d.units).label("units"),
        sa.func.sum(d.lines).label("lines"),
        sa.literal(1).label("side"),
    ).group_by(d.sku)
    both = sa.union_all(facts, aggregates).subquery()

    def side(column: str, n: int) -> Any:
        value = sa.case((both.c.side == n, both.c[column]), else_=0)
        return sa.func.coalesce(sa.func.sum(value), 0)

    fact_revenue, daily_revenue = side("revenue", 0), side("revenue", 1)
    offending = (
        sa.select(
            both.c.sku,
            fact_revenue.label("fact_revenue"),
            daily_revenue.label("daily_sales_revenue"),
            side("units", 0).label("fact_units"),
            side("units", 1).label("daily_sales_units"),
            side("lines", 0).label("fact_lines"),
            side("lines", 1).label("daily_sales_lines"),
        )
        .group_by(both.c.sku)
        .having(
            sa.or_(
                sa.func.abs(fact_revenue - daily_revenue) > TOLERANCE,
                side("units", 0) != side("units", 1),
                side("lines", 0) != side("lines", 1),
            )
        )
    )
    finding = _finding(conn, offending, [both.c.sku])
    finding.figures["absorbed_up_to_event"] = absorbed_up_to
    return finding
