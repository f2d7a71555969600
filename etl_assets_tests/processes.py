"""Background processes for tests and benchmarks: daemons and workers that are stopped (the
whole process group) when the block ends, with their output in a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from etl_assets.ledger import Job, Ledger
from etl_assets.ledger.models import FINISHED_STATUSES

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def background(
    args: Sequence[str], env: Mapping[str, str], log: Path, *, cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` in its own session; SIGTERM (then SIGKILL after 30 s) to its group on exit."""
    handle = log.open("w")
    process = subprocess.Popen(
        list(args), cwd=cwd, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        handle.close()


def wait_for_line(log: Path, text: str, timeout: float) -> None:
    """Wait until `text` appears in the log file; AssertionError with the log's tail if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise AssertionError(f"{text!r} not in {log.name} after {timeout} s:\n{tail}")


def wait_until_finished(ledger: Ledger, count: int, timeout: float) -> list[Job]:
    """The ledger's jobs, once `count` of them are finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ledger.list_jobs()
        if len(found) == count and all(job.status in FINISHED_STATUSES for job in found):
            return found
        time.sleep(0.5)
    raise AssertionError(f"jobs not finished in {timeout} s: {ledger.status_counts()}")


def wait_until_runs_end(instance: dg.DagsterInstance, count: int, timeout: float) -> list:
    """The instance's runs, once `count` of them ended. The ledger says done a moment before
    each run reports its own end; stopping the daemon or a worker earlier would cut them."""
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(dg.RunsFilter(job_name="sales_job"))
        if len(runs) == count and all(run.is_finished for run in runs):
            return list(runs)
        if time.monotonic() > deadline:
            states = sorted(f"{run.tags.get('etl/job_id')}: {run.status.value}" for run in runs)
            raise AssertionError(f"{count} runs not finished in {timeout} s: {states}")
        time.sleep(0.5)
