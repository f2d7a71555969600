"""Every ```sql block of docs/monitoring.md runs on the real schema and returns what the seeded
ledger (ops_seed: eleven jobs A..K with hand-worked figures) holds, on SQLite and PostgreSQL.

A block names itself (`-- name: ...`); `-- postgres-only` / `-- sqlite-only` restrict it to one
dialect. Each name has its expectation below, and every expectation must be used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ops_seed import C_ERROR, EXPECTED, seed_ledger

from etl_assets.db import is_postgres, utcnow

DOC = Path(__file__).resolve().parents[1] / "docs" / "monitoring.md"
BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)

Rows = Sequence[Sequence[Any]]
Ids = dict[str, str]


def sql_blocks() -> dict[str, str]:
    """{name: sql} of every block in the doc."""
    blocks = {}
    for sql in BLOCK.findall(DOC.read_text()):
        match = re.match(r"-- name: (\w+)\n", sql)
        assert match, f"a sql block of monitoring.md has no `-- name:` line:\n{sql}"
        blocks[match[1]] = sql
    return blocks


def counts(ids: Ids, *letters: str) -> list[str]:
    return [ids[letter] for letter in letters]


EXPECTATIONS: dict[str, Callable[[Rows, Ids], None]] = {}


def expects(*names: str) -> Callable[[Callable[[Rows, Ids], None]], Callable[[Rows, Ids], None]]:
    def register(check: Callable[[Rows, Ids], None]) -> Callable[[Rows, Ids], None]:
        for name in names:
            EXPECTATIONS[name] = check
        return check

    return register


@expects("status_overview")
def _status_overview(rows: Rows, ids: Ids) -> None:
    nonzero = {s: n for s, n in EXPECTED["counts_by_status"].items() if n}
    assert {r[0]: r[1] for r in rows} == nonzero
    assert [r[0] for r in rows] == sorted(nonzero)


@expects("failed_jobs")
def _failed_jobs(rows: Rows, ids: Ids) -> None:
    assert [tuple(r) for r in rows] == [
        (ids["C"], "job C", "permanent", C_ERROR, 1),
        (ids["D"], "job D", "transient_exhausted", "FX API answered 503 on every attempt", 3),
    ]


@expects("failures_by_type", "failures_by_type_sqlite")
def _failures_by_type(rows: Rows, ids: Ids) -> None:
    assert [tuple(r) for r in rows] == [("permanent", 1), ("transient_exhausted", 1)]


@expects("processing_jobs")
def _processing_jobs(rows: Rows, ids: Ids) -> None:
    assert [(r[0], r[4], r[5]) for r in rows] == [(ids["E"], 250, 1000), (ids["F"], 500, 1000)]


@expects("success_rate")
def _success_rate(rows: Rows, ids: Ids) -> None:
    [(completed, failed, percent)] = rows
    assert (completed, failed, float(percent)) == (3, 2, 60.0)


@expects("stuck_jobs", "stuck_jobs_sqlite")
def _stuck_jobs(rows: Rows, ids: Ids) -> None:
    assert [(r[0], r[2]) for r in rows] == [(ids["E"], "run-e")]  # F beat 10 s ago


@expects("failure_patterns", "failure_patterns_sqlite")
def _failure_patterns(rows: Rows, ids: Ids) -> None:
    assert [tuple(r) for r in rows] == [("permanent", C_ERROR, 1)]  # D failed two days ago


@expects("queue_depth")
def _queue_depth(rows: Rows, ids: Ids) -> None:
    assert [tuple(r) for r in rows] == [
        (d["priority"], d["pending"], d["due"]) for d in EXPECTED["queue_depth"]
    ]


@expects("retried_jobs")
def _retried_jobs(rows: Rows, ids: Ids) -> None:
    assert [r[0] for r in rows] == counts(ids, "C", "I", "B", "D")  # newest first
    assert rows[-1][:3] == (ids["D"], "failed", 3)
    assert sum(r[2] for r in rows) == EXPECTED["retry"]["total_retries"]


@expects("failed_attempts")
def _failed_attempts(rows: Rows, ids: Ids) -> None:
    assert [(r[0], r[2], r[4]) for r in rows] == [(ids["C"], 1, "failed"), (ids["B"], 1, "failed")]


@expects("average_duration", "average_duration_sqlite")
def _average_duration(rows: Rows, ids: Ids) -> None:
    [(dataset, jobs, avg)] = rows
    assert (dataset, jobs, float(avg)) == ("sales", 2, 200.0)  # A 100 s, B 300 s (K: 2 days)


@expects("hourly_throughput", "hourly_throughput_sqlite")
def _hourly_throughput(rows: Rows, ids: Ids) -> None:
    # A (97 rows) completed about 2 h ago, B (200) about 1 h ago: two hours; K is older.
    assert [(r[1], r[2]) for r in rows] == [(1, 97), (1, 200)]


@expects("quarantine_by_job")
def _quarantine_by_job(rows: Rows, ids: Ids) -> None:
    assert [tuple(r) for r in rows] == [(ids["A"], "sales-a.csv", 2), (ids["C"], "sales-c.csv", 1)]


def test_every_block_has_an_expectation_and_every_expectation_a_block() -> None:
    assert sorted(sql_blocks()) == sorted(EXPECTATIONS)


def runs_on(sql: str, postgres: bool) -> bool:
    if "-- postgres-only" in sql:
        return postgres
    if "-- sqlite-only" in sql:
        return not postgres
    return True


def test_the_queries_return_what_the_ledger_holds(engine: sa.Engine) -> None:
    ids = seed_ledger(engine, utcnow().replace(microsecond=0))
    postgres = is_postgres(engine)
    ran = []
    for name, sql in sql_blocks().items():
        if not runs_on(sql, postgres):
            continue
        with engine.connect() as conn:
            # The driver's own SQL, as an operator would type it (no bind-parameter parsing).
            rows = [tuple(r) for r in conn.exec_driver_sql(sql).all()]
        try:
            EXPECTATIONS[name](rows, ids)
        except AssertionError as exc:
            pytest.fail(f"monitoring.md `{name}` returned {rows}: {exc}")
        ran.append(name)
    # Each dialect runs every portable block and its own variant of each of the others.
    topics = sorted({name.removesuffix("_sqlite") for name in sql_blocks()})
    assert sorted(name.removesuffix("_sqlite") for name in ran) == topics


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_between_the_ops_docs_resolve() -> None:
    docs = DOC.parent
    for name in ("monitoring.md", "troubleshooting.md", "api.md"):
        text = (docs / name).read_text()
        for target, fragment in re.findall(r"\]\(([\w\-]*\.md)?#([\w\-]+)\)", text):
            linked = (docs / (target or name)).read_text()
            headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", linked, re.MULTILINE)}
            assert fragment in headings, f"{name}: no heading for {target or name}#{fragment}"
