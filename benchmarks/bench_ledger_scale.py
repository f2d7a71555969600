"""The ledger at a million jobs: the dispatch claim, the reaper's and the CLI's queries, and
every query of docs/monitoring.md, timed on PostgreSQL.

    python benchmarks/bench_ledger_scale.py [--jobs 1000000] [--repeat 20]

Seeds a scratch database with `--jobs` finished jobs over 90 days (1 in 50 failed, 1 in 20
retried) and a few pending and processing ones, then prints the median time of each query
over `--repeat` runs (target: under 10 ms each), and how long `etl prune` takes to remove
the oldest 10% in batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "etl_assets_tests"))  # the seed and queries the tests check

TARGET_MS = 10.0


def median_ms(action: object, repeat: int) -> float:
    """Median wall time of `action()` in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    """Seed, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    from common import machine, scratch_postgres
    from test_ledger_scale import LEDGER_QUERIES, seed_finished_jobs
    from test_monitoring_docs import runs_on, sql_blocks

    from etl_assets.db import create_engine, utcnow
    from etl_assets.ledger import Ledger
    from etl_assets.ops.retention import prune

    print(f"machine: {machine()}")
    with scratch_postgres() as url:
        engine = create_engine(url)
        started = time.perf_counter()
        seed_finished_jobs(engine, args.jobs)
        print(f"seeded {args.jobs:,} finished jobs in {time.perf_counter() - started:.1f} s")
        ledger = Ledger(engine)
        results: dict[str, float] = {}
        for name, query in LEDGER_QUERIES.items():
            if name == "dispatch claim":  # each claim takes jobs: measure it on fresh ones
                results[name] = median_ms(lambda: ledger.claim_due(1), min(args.repeat, 15))
            else:
                results[name] = median_ms(lambda q=query: q(ledger), args.repeat)
        for name, sql in sql_blocks().items():
            if runs_on(sql, postgres=True):
                results[f"monitoring.md {name}"] = median_ms(
                    lambda s=sql: _run(engine, s), args.repeat
                )
        width = max(len(name) for name in results)
        for name, ms in results.items():
            flag = "ok" if ms < TARGET_MS else "SLOW"
            print(f"  {name:<{width}}  {ms:7.2f} ms  {flag}")
        slowest = max(results.values())
        print(f"slowest query: {slowest:.2f} ms (target < {TARGET_MS:.0f} ms)")

        oldest_tenth = dt.timedelta(days=81)  # the seed spans 90 days
        started = time.perf_counter()
        report = prune(
            engine,
            older_than=oldest_tenth,
            dead_letters_older_than=oldest_tenth,
            batch_size=1000,
            now=utcnow(),
        )
        seconds = time.perf_counter() - started
        print(
            f"etl prune: {report.jobs:,} jobs in {report.batches} batches of up to 1,000 in "
            f"{seconds:.1f} s ({report.jobs / seconds:,.0f} jobs/s; each batch one short "
            f"transaction)"
        )
        engine.dispose()


def _run(engine: object, sql: str) -> None:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(sql).all()


if __name__ == "__main__":
    main()
