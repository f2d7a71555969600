"""Time to warehouse: one small file at a time through the real daemon, from submission to
`completed`, on the default run launcher and on warm Celery run workers.

    python benchmarks/bench_time_to_warehouse.py [--files 20] [--rows 20]
                                                 [--launcher default|celery|both]
                                                 [--via cli|api|inbox] [--no-api]

Each file is submitted only once the one before it is finished (`etl submit`, `POST /v1/jobs`
on a running `etl api`, or a copy into the inbox). `etl api` runs beside the daemon, as in a
deployment (docs/production.md), unless --no-api: on PostgreSQL it starts the run of a job
submitted anywhere as soon as the ledger announces the job, instead of the dispatch tick.
A file's time runs from the moment its submission starts (the `etl submit` process is
launched, the request is sent, the file lands in the inbox) to the ledger's `completed_at`.
Prints p50 and p90 against the targets (3 s with Celery, 8 s with the default launcher) and
against this machine's reference measured first (a new Python process importing the
platform, common.process_start_seconds), and where the seconds go: submission recorded (job
created), claimed (attempt started), run created, run started, the job's steps, completed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "etl_assets_tests"))  # processes.background, shared with tests

TARGETS = {"default": 8.0, "celery": 3.0}  # p50 seconds, issue 14 target 4
API_TOKEN = uuid.uuid4().hex  # an operator token for this run's `etl api` only
STAGES = ("created", "claimed", "run created", "run started", "work started", "completed")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--launcher", choices=["default", "celery", "both"], default="both")
    parser.add_argument("--celery-workers", type=int, default=2)
    parser.add_argument("--via", choices=["cli", "api", "inbox"], default="cli")
    parser.add_argument(
        "--no-api",
        action="store_true",
        help="without `etl api` running (with --via cli or inbox): jobs wait for a dispatch tick",
    )
    args = parser.parse_args()

    from common import machine, process_start_seconds

    print(f"machine: {machine()}")
    reference = process_start_seconds()
    print(f"reference: a new Python process importing the platform: {reference:.2f} s here")
    print(f"load before: {load_average()}")
    launchers = ["default", "celery"] if args.launcher == "both" else [args.launcher]
    for launcher in launchers:
        measure(launcher, args, reference)


def measure(launcher: str, args: argparse.Namespace, reference: float) -> None:
    """Start the daemon (and workers) for `launcher`, send the files one at a time, print."""
    from common import prepare_platform, scratch_postgres, use_celery_workers
    from processes import background, wait_for_line

    from etl_assets.datasets.samples import sales_frame, write_sales_csv
    from etl_assets.reference_api import ReferenceApiServer
    from etl_assets.runtime.celery_app import READY_LINE

    bin_dir = Path(sys.executable).parent
    with ExitStack() as stack:
        api = stack.enter_context(ReferenceApiServer())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(ignore_cleanup_errors=True)))
        env = os.environ | {
            "DATABASE_URL": stack.enter_context(scratch_postgres()),
            "DATA_DIR": str(tmp / "data"),
            "INBOX_DIR": str(tmp / "inbox"),
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "FX_API_URL": api.fx_url,
            "CATALOG_API_URL": api.catalog_url,
            "LOG_LEVEL": "WARNING",
            "OPS_API_OPERATOR_TOKENS": API_TOKEN,
        }
        if launcher == "celery":
            use_celery_workers(stack, env)
        _, ledger = prepare_platform(tmp / "dagster_home", env)
        (tmp / "inbox" / "sales").mkdir(parents=True)
        workers = [tmp / f"worker{n}.log" for n in range(args.celery_workers)]
        for n, log in enumerate(workers if launcher == "celery" else []):
            name = f"ttw{n}-{uuid.uuid4().hex[:6]}@%h"
            stack.enter_context(
                background([str(bin_dir / "etl"), "worker", "--name", name], env, log)
            )
        for log in workers if launcher == "celery" else []:
            wait_for_line(log, READY_LINE, timeout=120)
        api_url = ""
        if args.via == "api" or not args.no_api:
            port = free_port()
            api_log = tmp / "api.log"
            api_args = [str(bin_dir / "etl"), "api", "--port", str(port)]
            stack.enter_context(background(api_args, env, api_log))
            api_url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{api_url}/healthz", timeout=60)
        daemon_args = [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]
        stack.enter_context(background(daemon_args, env, tmp / "daemon.log"))

        def send(n: int) -> tuple[float, str]:
            frame = sales_frame(args.rows, seed=n, order_prefix=f"TTW{launcher[0]}{n:04d}")
            path = write_sales_csv(tmp / "files" / f"ttw_{n:04d}.csv", frame)
            return submit(args.via, path, env, api_url, tmp / "inbox" / "sales", ledger)

        # One file first, not counted: the daemon's code server, the API's code location and
        # the workers' first connections start cold once, as after any deploy.
        sent, job_id = send(0)
        wait_finished(ledger, job_id, timeout=1800)
        results = []
        for n in range(1, args.files + 1):
            sent, job_id = send(n)
            job = wait_finished(ledger, job_id, timeout=1800)
            results.append(timeline(ledger, job, sent))
            # One line per file as it goes: on a loaded machine a run can take minutes.
            print(
                f"  file {n}: {results[-1]['completed']:.2f} s, attempts {job.attempts}",
                flush=True,
            )
        # Printed before the clean-up: the daemon may still write to its home as it stops.
        report(launcher, args, results, load_average(), reference)


def submit(
    via: str, path: Path, env: dict[str, str], api_url: str, inbox: Path, ledger: Any
) -> tuple[float, str]:
    """Submit one file; returns the wall-clock time its submission started and its job id."""
    started = time.time()
    if via == "cli":
        etl = str(Path(sys.executable).with_name("etl"))
        out = subprocess.run(
            [etl, "submit", str(path), "--dataset", "sales", "--json"],
            env=env, cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        import json

        return started, json.loads(out.stdout)[0]["job_id"]
    if via == "api":
        import requests

        with path.open("rb") as handle:
            response = requests.post(
                f"{api_url}/v1/jobs",
                files={"file": (path.name, handle, "text/csv")},
                data={"dataset": "sales"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=60,
            )
        response.raise_for_status()
        return started, response.json()["job"]["job_id"]
    # inbox: the file lands whole (a rename), as a well-behaved uploader would do it
    staged = inbox.parent / f".{path.name}"
    shutil.copy(path, staged)
    started = time.time()
    staged.rename(inbox / path.name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for job in ledger.list_jobs(limit=5):
            if job.source_name == path.name:
                return started, job.job_id
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never became a job")


def wait_finished(ledger: Any, job_id: str, timeout: float) -> Any:
    """The job, once it is finished; AssertionError if it is not in time or not completed."""
    from etl_assets.ledger.models import FINISHED_STATUSES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ledger.get(job_id)
        if job.status in FINISHED_STATUSES:
            assert job.status.value == "completed", f"{job_id} {job.status}: {job.error_message}"
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job_id} not finished after {timeout} s: {ledger.get(job_id)}")


def timeline(ledger: Any, job: Any, sent: float) -> dict[str, float]:
    """Seconds from submission to each stage of the job."""
    import dagster as dg

    def at(moment: dt.datetime | float | None) -> float:
        if moment is None:
            return float("nan")
        if isinstance(moment, dt.datetime):
            moment = moment.replace(tzinfo=moment.tzinfo or dt.UTC).timestamp()
        return moment - sent

    attempt = ledger.attempts(job.job_id)[-1]
    with dg.DagsterInstance.get() as instance:
        record = instance.get_run_record_by_id(job.run_id)
        stats = instance.get_run_step_stats(job.run_id)
    assert record is not None, f"no run {job.run_id}"
    return {
        "created": at(job.created_at),
        "claimed": at(attempt["started_at"]),
        "run created": at(record.create_timestamp.timestamp()),
        "run started": at(record.start_time),
        "work started": at(min((s.start_time for s in stats if s.start_time), default=None)),
        "completed": at(job.completed_at),
    }


def report(
    launcher: str,
    args: argparse.Namespace,
    results: list[dict[str, float]],
    load: str,
    reference: float,
) -> None:
    """Print p50/p90 against the target and the machine's reference, and the median of each
    stage."""
    totals = sorted(r["completed"] for r in results)
    p50, p90 = percentile(totals, 0.5), percentile(totals, 0.9)
    target = TARGETS[launcher]
    name = f"{args.celery_workers} warm Celery run workers" if launcher == "celery" else (
        "the default run launcher"
    )  # fmt: skip
    name += ", without etl api" if args.no_api and args.via != "api" else ", etl api running"
    print(
        f"time to warehouse, {len(results)} files of {args.rows} rows one at a time via "
        f"{args.via}, {name}: p50 {p50:.2f} s (target <= {target:.0f}, ratio "
        f"{p50 / target:.2f}; {p50 / reference:.2f}x the reference), p90 {p90:.2f} s, max "
        f"{totals[-1]:.2f} s"
    )
    stages = "  ".join(
        f"{stage} {percentile(sorted(r[stage] for r in results), 0.5):.2f}" for stage in STAGES
    )
    print(f"  median seconds from submission: {stages}")
    print(f"  load after: {load}")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of sorted `values` (nearest rank)."""
    return values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))]


def load_average() -> str:
    """`uptime`'s line: the load the figures were taken under."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def free_port() -> int:
    """A TCP port nobody listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float) -> None:
    """Wait until `url` answers."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


if __name__ == "__main__":
    main()
