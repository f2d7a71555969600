"""Many small jobs through the real daemon path: ledger -> dispatch sensor -> run queue ->
runs -> warehouse, with batch runs of up to JOBS_PER_RUN small jobs (1: one run per job), on
the default run launcher (a new process per run) or on warm Celery run workers.

    python benchmarks/bench_daemon_jobs.py [--jobs 500] [--rows 100] [--jobs-per-run 10]
                                           [--celery-workers 2]

Prints the wall time from starting the daemon until every job is finished, seconds per job
against the 0.15 s target with the ratio, the load average before and after, and checks that
each job ran exactly once (one attempt, one materialization of its partition).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "etl_assets_tests"))  # processes.background, shared with tests

TARGET_PER_JOB = 0.15  # seconds per job of a 500-job burst, issue 14 target 4


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--jobs-per-run", type=int, default=10, help="1: one run per job")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--celery-workers", type=int, default=0, help="0: default launcher")
    parser.add_argument("--sqlite", action="store_true", help="ledger on SQLite, not PostgreSQL")
    args = parser.parse_args()

    import dagster as dg
    from common import (
        machine,
        prepare_platform,
        process_start_seconds,
        scratch_postgres,
        use_celery_workers,
    )
    from dagster._core.storage.dagster_run import FINISHED_STATUSES as FINISHED_RUNS
    from processes import background, wait_for_line

    from etl_assets.assets.batch import BATCH_JOB
    from etl_assets.datasets import get_dataset
    from etl_assets.datasets.samples import sales_frame, write_sales_csv
    from etl_assets.intake.publisher import publish_file, source_archive
    from etl_assets.ledger.models import FINISHED_STATUSES
    from etl_assets.reference_api import ReferenceApiServer
    from etl_assets.runtime.celery_app import READY_LINE

    sales_job = get_dataset("sales").job_name  # the per-job asset job of the files sent here
    print(f"machine: {machine()}")
    reference = process_start_seconds()
    print(f"reference: a new Python process importing the platform: {reference:.2f} s here")
    print(f"load before: {uptime()}")
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
            "JOBS_PER_RUN": str(args.jobs_per_run),
            "DISPATCH_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
        if args.celery_workers:
            use_celery_workers(stack, env)
        settings, ledger = prepare_platform(tmp / "dagster_home", env)
        archive = source_archive(settings.staging_dir)
        for n in range(args.jobs):
            frame = sales_frame(args.rows, seed=n, order_prefix=f"SMALL{n:04d}")
            path = write_sales_csv(tmp / "files" / f"small_{n:04d}.csv", frame)
            publish_file(ledger, archive, path, dataset="sales")

        etl = str(Path(sys.executable).with_name("etl"))
        workers = [tmp / f"worker{n}.log" for n in range(args.celery_workers)]
        for n, log in enumerate(workers):
            name = f"bench{n}-{uuid.uuid4().hex[:6]}@%h"
            stack.enter_context(background([etl, "worker", "--name", name], env, log))
        for log in workers:  # each imports Dagster and the code once, before any run
            wait_for_line(log, READY_LINE, timeout=90)
        started = time.perf_counter()
        daemon = str(Path(sys.executable).with_name("dagster-daemon"))
        daemon_args = [daemon, "run", "-w", "workspace.yaml"]
        stack.enter_context(background(daemon_args, env, tmp / "daemon.log"))
        deadline = time.monotonic() + 30 * 60
        while time.monotonic() < deadline:
            counts = ledger.status_counts()
            if sum(counts.get(s, 0) for s in FINISHED_STATUSES) == args.jobs:
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        with dg.DagsterInstance.get() as instance:
            # The ledger says done a moment before each run reports its own end; stopping the
            # daemon earlier would cut those runs short.
            unfinished = dg.RunsFilter(
                statuses=[s for s in dg.DagsterRunStatus if s not in FINISHED_RUNS]
            )
            while instance.get_runs_count(unfinished) and time.monotonic() < deadline:
                time.sleep(0.5)
            runs = instance.get_runs(dg.RunsFilter(job_name=sales_job))
            runs += instance.get_runs(dg.RunsFilter(job_name=BATCH_JOB))
            records = instance.get_run_records(dg.RunsFilter(job_name=sales_job))
            records += instance.get_run_records(dg.RunsFilter(job_name=BATCH_JOB))
            events = instance.fetch_materializations(
                dg.AssetKey(["sales", "sales_fact"]), limit=args.jobs * 2
            )
            per_partition = Counter(
                r.asset_materialization.partition for r in events.records if r.asset_materialization
            )
            failures = {
                f"{run.run_id} ({run.status.value})": failure_messages(instance, run.run_id)
                for run in runs
                if run.status != dg.DagsterRunStatus.SUCCESS
            }
        waits = sorted(
            r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time
        )
        spans = sorted(r.end_time - r.start_time for r in records if r.end_time and r.start_time)
        attempts = {job.job_id: job.attempts for job in ledger.list_jobs(limit=args.jobs)}
        retried = {job_id: ledger.attempts(job_id) for job_id, n in attempts.items() if n > 1}
        # A run the reaper gave up on may have ended well later on: ask it what happened.
        named = {
            run_id
            for history in retried.values()
            for attempt in history
            for run_id in re.findall(r"run ([0-9a-f-]{36})", attempt["error_message"] or "")
        }
        with dg.DagsterInstance.get() as instance:
            for run_id in sorted(named):
                run = instance.get_run_by_id(run_id)
                status = run.status.value if run else "unknown"
                failures[f"{run_id} ({status})"] = failure_messages(instance, run_id)
        worker_tails = {log.name: log.read_text()[-3000:] for log in workers if failures}
        load = uptime()

    launcher = (
        f"{args.celery_workers} warm Celery run workers"
        if args.celery_workers
        else "the default run launcher (a new process per run)"
    )
    print(
        f"{args.jobs} jobs of {args.rows} rows through {launcher}, max {args.max_concurrent} "
        f"runs at once, ledger on {'SQLite' if args.sqlite else 'PostgreSQL'}: {counts}"
    )
    per_job = seconds / args.jobs
    print(
        f"wall time: {seconds:.1f} s, {per_job:.3f} s per job (target <= {TARGET_PER_JOB}, "
        f"ratio {per_job / TARGET_PER_JOB:.2f}; {per_job / reference:.2f}x the reference)"
    )
    if spans:
        print(
            f"per run: median {waits[len(waits) // 2]:.2f} s from request to start, "
            f"{spans[len(spans) // 2]:.2f} s running (p90 {spans[int(len(spans) * 0.9)]:.2f} s)"
        )
    print(f"load after: {load}")
    once = set(attempts.values()) == {1} and set(per_partition.values()) == {1}
    once = once and len(per_partition) == args.jobs
    print(
        f"each job ran exactly once: {once} ({len(runs)} runs of up to {args.jobs_per_run} jobs, "
        f"attempts {set(attempts.values())}, {len(per_partition)} partitions materialized, "
        f"{max(per_partition.values(), default=0)} time(s) at most)"
    )
    for run_id, messages in failures.items():  # what went wrong, as Dagster recorded it
        print(f"  run {run_id}: " + (" | ".join(messages) or "no failure recorded"))
    for name, tail in worker_tails.items():
        print(f"--- tail of {name}:\n{tail}")
    for job_id, history in retried.items():  # why a job needed more than one attempt
        for attempt in history:
            print(
                f"  {job_id} attempt {attempt['attempt']}: {attempt['outcome']} "
                f"{attempt['error_type'] or ''} {(attempt['error_message'] or '')[:300]}"
            )


def uptime() -> str:
    """`uptime`'s line: the load average the figures were taken under."""
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def failure_messages(instance: object, run_id: str) -> list[str]:
    """What the run's failure events say (step and run failures, errors in engine events)."""
    import dagster as dg

    assert isinstance(instance, dg.DagsterInstance)
    messages = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        error = entry.error_info or (
            event.event_specific_data.error  # type: ignore[union-attr]
            if event is not None and event.is_step_failure
            else None
        )
        if event is not None and (event.is_run_failure or error is not None):
            detail = f": {error.message.strip()}" if error is not None else ""
            messages.append(f"{entry.message or event.event_type_value}{detail}"[:500])
    return messages


if __name__ == "__main__":
    main()
