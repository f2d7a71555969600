"""Background processes for tests and benchmarks: daemons and workers that are stopped (the
whole process group) when the block ends, with their output in a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg

from etl_assets.ledger import Job, Ledger
from etl_assets.ledger.models import FINISHED_STATUSES

REPO = Path(__file__).resolve().parents[1]
STRAGGLER_SECONDS = 5.0  # how long a child may outlive its stopped process


@contextmanager
def background(
    args: Sequence[str], env: Mapping[str, str], log: Path, *, cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` in its own session. On exit: SIGTERM to its group; SIGKILL to the process if
    it has not exited 30 s later, and to any child still there a few seconds after it."""
    handle = log.open("w")
    process = subprocess.Popen(
        list(args), cwd=cwd, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        group = process.pid
        _signal_group(group, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(30)
        # Then the rest of the group: a child can outlive the process. Seen: a `dagster api
        # grpc` code server hung in its own shutdown after its daemon had exited, an orphan
        # for good.
        deadline = time.monotonic() + STRAGGLER_SECONDS
        while _signal_group(group, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(group, signal.SIGKILL)
        process.wait(10)
        handle.close()


def _signal_group(group: int, sig: int) -> bool:
    """Send `sig` to the process group (0: only ask whether it exists); False when empty."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


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
