"""Many small jobs through the real daemon path: inbox -> ledger -> dispatch sensor -> run
queue -> one run per job (default run launcher) -> warehouse.

    python benchmarks/bench_daemon_jobs.py [--jobs 100] [--rows 100] [--sqlite]

Prints the wall time from the first dispatch until every job is finished, seconds per job,
and how the time splits between waiting in the queue and running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--sqlite", action="store_true", help="ledger on SQLite, not PostgreSQL")
    args = parser.parse_args()

    import dagster as dg
    from common import machine, scratch_postgres

    from etl_assets.config import Settings
    from etl_assets.db import engine_for
    from etl_assets.instance import write_dagster_home
    from etl_assets.ledger import Ledger
    from etl_assets.ledger.models import FINISHED_STATUSES
    from etl_assets.publisher import publish_file, source_archive
    from etl_assets.reference_api import ReferenceApiServer
    from etl_assets.sample_data import sales_frame, write_sales_csv

    print(f"machine: {machine()}")
    with ExitStack() as stack:
        api = stack.enter_context(ReferenceApiServer())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (
            f"sqlite:///{tmp / 'etl.db'}"
            if args.sqlite
            else stack.enter_context(scratch_postgres())
        )
        env = os.environ | {
            "DATABASE_URL": url,
            "DATA_DIR": str(tmp / "data"),
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "FX_API_URL": api.fx_url,
            "CATALOG_API_URL": api.catalog_url,
            "MAX_CONCURRENT_JOBS": str(args.max_concurrent),
            "BATCH_SIZE": str(args.jobs),
            "DISPATCH_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        settings = Settings.from_env()
        write_dagster_home(tmp / "dagster_home", REPO / "dagster.yaml", settings)
        if args.sqlite:
            from etl_assets import migrations

            migrations.upgrade(engine_for(settings))
        ledger = Ledger(engine_for(settings))
        archive = source_archive(settings.staging_dir)
        for n in range(args.jobs):
            frame = sales_frame(args.rows, seed=n, order_prefix=f"SMALL{n:04d}")
            path = write_sales_csv(tmp / "files" / f"small_{n:04d}.csv", frame)
            publish_file(ledger, archive, path, dataset="sales")

        started = time.perf_counter()
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack.callback(lambda: (os.killpg(daemon.pid, signal.SIGTERM), daemon.wait(60)))
        while True:
            counts = ledger.status_counts()
            if sum(counts.get(s, 0) for s in FINISHED_STATUSES) == args.jobs:
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="etl_job"))
            durations = [
                r.end_time - r.start_time
                for r in (instance.get_run_record_by_id(run.run_id) for run in runs)
                if r is not None and r.start_time and r.end_time
            ]

    print(
        f"{args.jobs} jobs of {args.rows} rows, max {args.max_concurrent} runs at once, "
        f"ledger on {'SQLite' if args.sqlite else 'PostgreSQL'}: {counts}"
    )
    print(f"wall time: {seconds:.1f} s, {seconds / args.jobs:.2f} s per job")
    if durations:
        mean = sum(durations) / len(durations)
        print(
            f"each run takes {mean:.2f} s from start to end on average "
            "(a new Python process per run: imports and run set-up dominate)"
        )


if __name__ == "__main__":
    main()
