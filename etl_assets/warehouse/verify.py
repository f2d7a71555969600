"""What every dataset's warehouse checks verify, as SQL built from its declaration.

A check is the SELECT of what offends it (datasets/base.py `Check`). `finding` runs one: a
count of the offending rows (or keys) and a sample of at most `SAMPLE` of them for the asset
check's metadata, in one or two set-based queries over the whole table, no per-row Python.
`generic_checks` are the checks every dataset gets: natural keys unique, rows of completed
jobs only, each job's rows adding up, and, when it declares dimensions, every row's
dimension present. Enrichments bring their own (the FX conversion), datasets theirs.
`etl_assets.assets.checks` turns them into Dagster asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.base import Check, CheckContext, Dataset
from etl_assets.ledger.schema import jobs, pruned_jobs

SAMPLE = 20
# Rows of these jobs may be in the fact table while the job loads (chunks commit one by one).
IN_FLIGHT = ("processing", "pending")


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


def finding(conn: sa.Connection, offending: sa.Select[Any]) -> Finding:
    """Count the rows of `offending` and sample the first SAMPLE of them, ordered by its
    selected columns (the first one first)."""
    subquery = offending.subquery()
    count = conn.execute(sa.select(sa.func.count()).select_from(subquery)).scalar_one()
    order = list(subquery.c)
    rows = conn.execute(sa.select(subquery).order_by(*order).limit(SAMPLE)).mappings()
    return Finding(int(count), [{k: _plain(v) for k, v in row.items()} for row in rows])


def run_check(conn: sa.Connection, check: Check, context: CheckContext) -> Finding:
    """The finding of one check, with the figures the check gives beside it."""
    result = finding(conn, check.offending(context))
    figures = check.figures(context) if check.figures else {}
    for name, query in figures.items():
        result.figures[name] = _plain(conn.execute(query).scalar())
    return result


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str) or value is None else str(value)


def all_checks(dataset: Dataset) -> list[Check]:
    """Every check of the dataset's fact table: the generic ones, its enrichments', its own."""
    checks = [*generic_checks(dataset)]
    for enrichment in dataset.enrichments:
        checks.extend(enrichment.checks)
    checks.extend(dataset.checks)
    return checks


def generic_checks(dataset: Dataset) -> list[Check]:
    """The checks every dataset gets."""
    checks = []
    if dataset.dimensions:
        names = " and ".join(d.table.name for d in dataset.dimensions)
        checks.append(
            Check(
                name="fact_dimensions_exist",
                description=f"Every fact row's dimension rows exist in {names}.",
                what="fact rows without their dimension rows",
                offending=_facts_without_dimensions,
            )
        )
    checks += [
        Check(
            name="fact_jobs_completed",
            description=(
                "Every fact row carries the job id of a completed job (jobs still loading "
                "excepted)."
            ),
            what="jobs with rows in the warehouse that are not completed",
            offending=_facts_of_unfinished_jobs,
            figures=lambda context: {"rows_of_jobs_in_flight": _rows_in_flight(context)},
        ),
        Check(
            name="job_rows_balance",
            description="Per completed job, rows in = loaded + quarantined + duplicate.",
            what="completed jobs whose rows do not add up",
            offending=_unbalanced_jobs,
        ),
        Check(
            name="no_duplicate_natural_keys",
            description=(
                f"No natural key ({', '.join(dataset.natural_key)}) is held by two fact rows."
            ),
            what="natural keys held by more than one fact row",
            offending=_duplicate_natural_keys,
        ),
    ]
    return checks


def _facts_without_dimensions(context: CheckContext) -> sa.Select[Any]:
    """Fact rows whose key in some dimension has no row there."""
    dataset = context.dataset
    f = dataset.fact_table.c
    missing = [
        (~sa.exists().where(d.table.c[d.key] == f[d.key])).label(f"{d.table.name}_missing")
        for d in dataset.dimensions
    ]
    key = [f[name] for name in dataset.natural_key]
    dimension_keys = [f[d.key] for d in dataset.dimensions if d.key not in dataset.natural_key]
    return sa.select(*key, *dimension_keys, f.job_id, *missing).where(sa.or_(*missing))


def _job_status(dataset: Dataset) -> tuple[sa.Select[Any], Any]:
    """Rows per job of the fact table, with the job's status (or its tombstone's: a job
    `etl prune` removed)."""
    f = dataset.fact_table.c
    status = sa.func.coalesce(jobs.c.status, pruned_jobs.c.status)
    per_job = (
        sa.select(f.job_id, status.label("status"), sa.func.count().label("rows"))
        .select_from(
            dataset.fact_table.outerjoin(jobs, jobs.c.job_id == f.job_id).outerjoin(
                pruned_jobs, pruned_jobs.c.job_id == f.job_id
            )
        )
        .group_by(f.job_id, status)
    )
    return per_job, status


def _facts_of_unfinished_jobs(context: CheckContext) -> sa.Select[Any]:
    """Jobs (with their fact rows) that put rows in the warehouse but are not completed:
    failed, cancelled, or not in the ledger at all. Jobs still loading are left out (their
    rows are counted in the figure `rows_of_jobs_in_flight`): their chunks commit before
    they complete."""
    per_job, status = _job_status(context.dataset)
    return per_job.where(sa.or_(status.is_(None), status.not_in(["completed", *IN_FLIGHT])))


def _rows_in_flight(context: CheckContext) -> sa.Select[Any]:
    per_job, status = _job_status(context.dataset)
    in_flight = per_job.where(status.in_(IN_FLIGHT)).subquery()
    return sa.select(sa.func.coalesce(sa.func.sum(in_flight.c.rows), 0))


def _unbalanced_jobs(context: CheckContext) -> sa.Select[Any]:
    """Completed jobs of the dataset whose rows in differ from loaded + quarantined +
    duplicate."""
    j = jobs.c
    accounted = j.rows_loaded + j.rows_quarantined + j.rows_duplicate
    return sa.select(
        j.job_id, j.rows_total, j.rows_loaded, j.rows_quarantined, j.rows_duplicate
    ).where(
        j.dataset == context.dataset.name,
        j.status == "completed",
        sa.or_(j.rows_total.is_(None), j.rows_total != accounted),
    )


def _duplicate_natural_keys(context: CheckContext) -> sa.Select[Any]:
    """Natural keys held by more than one fact row (the primary key prevents it; the check
    guards against its loss)."""
    f = context.dataset.fact_table.c
    key = [f[name] for name in context.dataset.natural_key]
    return sa.select(*key, sa.func.count().label("rows")).group_by(*key).having(sa.func.count() > 1)
