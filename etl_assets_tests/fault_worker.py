"""A warm run worker for the fault tests (test_random_faults.py): a real run process to kill.

Run as a script (`python etl_assets_tests/fault_worker.py`) with the platform's settings in its
environment. It imports dagster and the code location once, prints `ready`, then executes one
run of the sales asset job per line read from stdin (a dispatch run request as JSON:
`partition_key` and `tags`), as test_recovery.py's one-shot run script does, each in a run
process forked for it (`started PID`), and prints `ran JOB_ID ok|failed|killed ...` after each.

So that a fault can be aimed at a phase of the job, the worker writes a probe line (`pid time
kind detail`) to FAULT_PROBE_FILE at each of these points and, at the kind the run's fault is
aimed at (the request's `aim`), pauses FAULT_PAUSE_SECONDS to widen that moment. The product
code is unchanged; only these calls are wrapped:

- `copy N`: COPY FROM STDIN is open on the server and the client is streaming the rows;
- `committed`: a chunk's transaction (rows, quarantine, checkpoint) has just committed;
- `completing`: inside the completion transaction (job `completed` and its event, uncommitted);
- `handler-start EVENT_ID` / `handler-end EVENT_ID`: the test's `transaction.parsed` handler.

The handler also appends `EVENT_ID` to FAULT_HANDLED_FILE when it finishes, so the test can
count how many times each event was really handled.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

HANDLER_NAME = "fault-test-handler"
PATHS = {"probe": "", "handled": ""}  # set by configure()
PAUSE = {"seconds": 0.03}
AIM = {"kind": ""}  # the probe kind the current run's fault is aimed at: only it pauses


def configure(probe_file: str, handled_file: str, pause_seconds: float) -> None:
    """Where probes and handled events go, and how long each probe pauses (the worker reads
    them from its environment; the test process sets them directly)."""
    PATHS.update(probe=probe_file, handled=handled_file)
    PAUSE["seconds"] = pause_seconds


def probe(line: str) -> None:
    """Append one probe line (flushed at once: the process may be killed right after)."""
    if not PATHS["probe"]:
        return
    fd = os.open(PATHS["probe"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {time.time():.3f} {line}\n".encode())
    finally:
        os.close(fd)


def pause(kind: str, times: int = 1) -> None:
    """Pause at a probe of `kind` if the run's fault is aimed at that kind (pausing at every
    probe would cost each run about a second)."""
    if AIM["kind"] == kind:
        time.sleep(PAUSE["seconds"] * times)


def handle_event(event: Any) -> None:
    """The test's `transaction.parsed` handler: slow enough for a kill to land inside it."""
    probe(f"handler-start {event.id}")
    pause("handler-start", 4)
    if PATHS["handled"]:
        fd = os.open(PATHS["handled"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event.id}\n".encode())
        finally:
            os.close(fd)
    probe(f"handler-end {event.id}")


def register_test_handler() -> None:
    """Register `handle_event` for `transaction.parsed` (the test process does the same, so
    an event retried from there runs the same handler)."""
    from etl_assets.events.store import TRANSACTION_PARSED, register_handler

    register_handler(TRANSACTION_PARSED, handle_event, name=HANDLER_NAME)


def instrument() -> None:
    """Wrap the load's COPY, chunk commits and completion with probes and pauses."""
    from etl_assets.assets import factory, io_manager
    from etl_assets.runs import tracking
    from etl_assets.warehouse import bulk, load

    copies = {"n": 0}
    real_readinto = bulk.CsvStream.readinto
    real_check = tracking.Heartbeat.check
    real_record = load.record_transaction_parsed

    def readinto(self: Any, buffer: Any) -> int:
        if not getattr(self, "_probed", False):  # the first read: the server is in COPY
            self._probed = True
            copies["n"] += 1
            probe(f"copy {copies['n']}")
            pause("copy")
        return real_readinto(self, buffer)

    def check(self: Any) -> None:
        # load_job calls check() right after each chunk's commit; other callers (the source
        # step's chunks, the end of every step) are not that moment
        if sys._getframe(1).f_code.co_name == "load_job":
            probe("committed")
            pause("committed")
        real_check(self)

    def record(*args: Any, **kwargs: Any) -> int:
        probe("completing")
        pause("completing")
        return real_record(*args, **kwargs)

    def step(module: Any, name: str) -> None:
        real = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            probe(f"step {name}")
            return real(*args, **kwargs)

        setattr(module, name, wrapped)

    step(factory, "read_source")
    step(factory, "enrich_step")
    step(io_manager, "load_rows")
    bulk.CsvStream.readinto = readinto  # type: ignore[method-assign]
    tracking.Heartbeat.check = check  # type: ignore[method-assign]
    load.record_transaction_parsed = record


def main() -> None:
    """Serve run requests from stdin until it closes: one forked run process per request."""
    import dagster as dg
    import psycopg2  # noqa: F401 - imported once here rather than in every run process
    import pyarrow.csv  # noqa: F401

    from etl_assets.config import Settings
    from etl_assets.definitions import build_definitions

    env = os.environ
    configure(env["FAULT_PROBE_FILE"], env["FAULT_HANDLED_FILE"], float(env["FAULT_PAUSE_SECONDS"]))
    register_test_handler()
    instrument()
    job = build_definitions(Settings.from_env()).resolve_job_def("sales_job")
    logs = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    # Open (and close) the instance once here: its storage modules are imported lazily, and
    # without this every forked run process would import them again (seconds of CPU each).
    with dg.DagsterInstance.get():
        pass
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)  # a dispatch sensor's run request
        job_id = request["partition_key"]
        # The run process is forked from this warm one (as a prefork Celery worker runs it):
        # a kill -9 ends that run's process, with its connections and heartbeat thread, and
        # the next run starts without importing dagster again. This process keeps no
        # connection or thread open, so the fork shares none.
        pid = os.fork()
        if pid == 0:
            AIM["kind"] = request.get("aim", "")
            probe(f"run {job_id}")
            with dg.DagsterInstance.get() as instance:
                result = job.execute_in_process(
                    partition_key=job_id,
                    instance=instance,
                    tags=request["tags"],
                    run_config=logs,
                    raise_on_error=False,
                )
                probe(f"ran {job_id}")
            os._exit(0 if result.success else 1)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            outcome = f"killed by signal {os.WTERMSIG(status)}"
        else:
            outcome = "ok" if os.WEXITSTATUS(status) == 0 else "failed"
        print(f"ran {job_id} {outcome}", flush=True)


if __name__ == "__main__":
    main()
