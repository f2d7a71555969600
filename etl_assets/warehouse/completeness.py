"""Completeness of the loaded data: which dates each group is missing in a date range.

A dataset declares its completeness columns (`Completeness`: a date and a group, e.g. a
store); `etl validate --dataset D --from D1 --to D2` prints the report (cli/validate.py).
Only rows of completed jobs count (rows of a job that failed half-way are not "loaded"). A
group is any value of the group column the warehouse has rows for (or the ones asked for); a
gap is a run of consecutive missing dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl_assets.datasets import get_dataset
from etl_assets.db import read_connection
from etl_assets.errors import PermanentError
from etl_assets.ledger.schema import jobs

MAX_DAYS = 3660  # ten years: a longer range is more likely a typo than a question


@dataclass
class GroupCompleteness:
    """One group's loaded and missing dates in the range."""

    group: str
    dates_loaded: int
    missing_dates: list[dt.date] = field(default_factory=list)

    @property
    def gaps(self) -> list[tuple[dt.date, dt.date]]:
        """Runs of consecutive missing dates, as (first, last)."""
        return date_runs(self.missing_dates)


@dataclass
class Completeness:
    """The whole report: per group, and the dates no group has data for."""

    dataset: str
    group_by: str  # the group column, e.g. store_id
    first: dt.date
    last: dt.date
    groups: list[GroupCompleteness]
    dates_without_data: list[dt.date]

    @property
    def complete(self) -> bool:
        """True when every group has rows on every date of the range."""
        return bool(self.groups) and not any(g.missing_dates for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (dates as ISO strings)."""
        return {
            "dataset": self.dataset,
            "group_by": self.group_by,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "days": (self.last - self.first).days + 1,
            "complete": self.complete,
            "groups": [
                {
                    "group": s.group,
                    "dates_loaded": s.dates_loaded,
                    "dates_missing": len(s.missing_dates),
                    "missing_dates": [d.isoformat() for d in s.missing_dates],
                    "gaps": [
                        {"from": a.isoformat(), "to": b.isoformat(), "days": (b - a).days + 1}
                        for a, b in s.gaps
                    ],
                }
                for s in self.groups
            ],
            "dates_without_data": [d.isoformat() for d in self.dates_without_data],
        }


def check_completeness(
    engine: Engine,
    dataset: str,
    first: dt.date,
    last: dt.date,
    groups: list[str] | None = None,
) -> Completeness:
    """Which dates from `first` to `last` (inclusive) each group has no loaded rows for."""
    if last < first:
        raise PermanentError(f"--to {last} is before --from {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise PermanentError(f"the range is longer than {MAX_DAYS} days: ask for less")
    declared = get_dataset(dataset)
    if declared.completeness is None:
        raise PermanentError(f"dataset {dataset!r} declares no completeness columns")
    table = declared.fact_table
    date = table.c[declared.completeness.date]
    group = table.c[declared.completeness.group]
    completed = table.join(
        jobs, sa.and_(jobs.c.job_id == table.c.job_id, jobs.c.status == "completed")
    )
    loaded = (
        sa.select(group, date).select_from(completed).where(date.between(first, last)).distinct()
    )
    with read_connection(engine) as conn:
        by_group: dict[str, set[dt.date]] = {}
        for value, day in conn.execute(loaded):
            by_group.setdefault(str(value), set()).add(_as_date(day))
        known = groups or list(conn.execute(sa.select(group).distinct()).scalars())
    calendar = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    report = [
        GroupCompleteness(
            value,
            len(by_group.get(value, set())),
            [d for d in calendar if d not in by_group.get(value, set())],
        )
        for value in sorted(known)
    ]
    any_data = set().union(*by_group.values()) if by_group else set()
    return Completeness(
        dataset, group.name, first, last, report, [d for d in calendar if d not in any_data]
    )


def date_runs(dates: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted dates grouped into runs of consecutive days, as (first, last)."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(dates):
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _as_date(value: Any) -> dt.date:
    # SQLite hands dates back as text when the column type is lost in DISTINCT.
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
