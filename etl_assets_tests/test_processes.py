"""The background-process helper of the tests and benchmarks stops the whole group."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from processes import STRAGGLER_SECONDS, background

# A process that starts a child ignoring SIGTERM (as a code server hung in its own shutdown
# did), then waits to be stopped itself.
PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def _group_members(group: int) -> list[str]:
    found = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    return found.stdout.split()


def test_a_child_that_outlives_its_stopped_process_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "background.log"
    with background([sys.executable, "-c", PARENT], os.environ, log) as process:
        group = process.pid
        deadline = time.monotonic() + 30
        while "1" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the child is up, its SIGTERM handler set
        assert len(_group_members(group)) == 2
        stopping = time.monotonic()
    assert process.returncode is not None
    deadline = time.monotonic() + 10
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is delivered asynchronously
    assert _group_members(group) == []
    assert time.monotonic() - stopping < STRAGGLER_SECONDS + 10
