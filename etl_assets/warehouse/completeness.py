"""Completeness of the loaded data: which dates each store is missing in a date range.

`etl validate --dataset sales --from D --to D` prints it (see `validate_cli`). Only rows of
completed jobs count (rows of a job that failed half-way are not "loaded"). A store is any
store the warehouse has rows for (or the ones asked for); a gap is a run of consecutive
missing dates.
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
DATE_COLUMN, STORE_COLUMN = "order_date", "store_id"


@dataclass
class StoreCompleteness:
    """One store's loaded and missing dates in the range."""

    store_id: str
    dates_loaded: int
    missing_dates: list[dt.date] = field(default_factory=list)

    @property
    def gaps(self) -> list[tuple[dt.date, dt.date]]:
        """Runs of consecutive missing dates, as (first, last)."""
        return date_runs(self.missing_dates)


@dataclass
class Completeness:
    """The whole report: per store, and the dates no store has data for."""

    dataset: str
    first: dt.date
    last: dt.date
    stores: list[StoreCompleteness]
    dates_without_data: list[dt.date]

    @property
    def complete(self) -> bool:
        """True when every store has rows on every date of the range."""
        return bool(self.stores) and not any(s.missing_dates for s in self.stores)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (dates as ISO strings)."""
        return {
            "dataset": self.dataset,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "days": (self.last - self.first).days + 1,
            "complete": self.complete,
            "stores": [
                {
                    "store_id": s.store_id,
                    "dates_loaded": s.dates_loaded,
                    "dates_missing": len(s.missing_dates),
                    "missing_dates": [d.isoformat() for d in s.missing_dates],
                    "gaps": [
                        {"from": a.isoformat(), "to": b.isoformat(), "days": (b - a).days + 1}
                        for a, b in s.gaps
                    ],
                }
                for s in self.stores
            ],
            "dates_without_data": [d.isoformat() for d in self.dates_without_data],
        }


def check_completeness(
    engine: Engine,
    dataset: str,
    first: dt.date,
    last: dt.date,
    stores: list[str] | None = None,
) -> Completeness:
    """Which dates from `first` to `last` (inclusive) each store has no loaded rows for."""
    if last < first:
        raise PermanentError(f"--to {last} is before --from {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise PermanentError(f"the range is longer than {MAX_DAYS} days: ask for less")
    table = get_dataset(dataset).fact_table
    if DATE_COLUMN not in table.c or STORE_COLUMN not in table.c:
        raise PermanentError(f"dataset {dataset!r} has no {DATE_COLUMN} and {STORE_COLUMN}")
    date, store = table.c[DATE_COLUMN], table.c[STORE_COLUMN]
    completed = table.join(
        jobs, sa.and_(jobs.c.job_id == table.c.job_id, jobs.c.status == "completed")
    )
    loaded = (
        sa.select(store, date).select_from(completed).where(date.between(first, last)).distinct()
    )
    with read_connection(engine) as conn:
        by_store: dict[str, set[dt.date]] = {}
        for store_id, day in conn.execute(loaded):
            by_store.setdefault(str(store_id), set()).add(_as_date(day))
        known = stores or list(conn.execute(sa.select(store).distinct()).scalars())
    calendar = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    report = [
        StoreCompleteness(
            store_id,
            len(by_store.get(store_id, set())),
            [d for d in calendar if d not in by_store.get(store_id, set())],
        )
        for store_id in sorted(known)
    ]
    any_data = set().union(*by_store.values()) if by_store else set()
    return Completeness(dataset, first, last, report, [d for d in calendar if d not in any_data])


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
