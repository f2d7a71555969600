"""The rig of the fault tests (test_random_faults.py): warm run workers to kill, probes that
say where a run is, and the checks that a job ended exactly once whatever hit it.

A `Worker` is a real run process (fault_worker.py) fed run requests from the real dispatch
sensor; `Probes` reads what it wrote at each instrumented moment; `Moment` is a random point of
a run to hit (a delay after the request, or the n-th probe of a kind); `Rig` drives the
platform around them the way the product does: the dispatch sensor claims, the reaper takes a
dead run's job back, and `check_exactly_once` reads the result from the database.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from conftest import Platform
from fault_worker import HANDLER_NAME

from etl_assets.datasets.samples import corrupt, sales_frame, write_sales_csv
from etl_assets.events.store import TRANSACTION_PARSED, event_handler_runs, events
from etl_assets.ledger import Job, JobStatus
from etl_assets.ledger.schema import quarantined_rows

WORKER = Path(__file__).with_name("fault_worker.py")
REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 90.0  # seconds a run may take before the test gives up on it (never reached)


class Worker:
    """The warm worker process (fault_worker.py): fed one run request at a time, each run in
    a process of its own (`run_pid`) that can be killed while the worker lives on."""

    def __init__(
        self, env: Mapping[str, str], log: Path, describe_database: Callable[[], str]
    ) -> None:
        self.describe_database = describe_database  # for the message if a run hangs
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)], cwd=REPO, env=dict(env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
        )  # fmt: skip
        self.run_pid = 0  # the process of the current (or last) run
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self._next_line(RUN_TIMEOUT)
        assert line == "ready", f"the worker did not start ({line!r}); see {log}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode().strip()
            if line.split(" ")[0] in ("ready", "started", "ran"):  # not a stray print
                self._lines.put(line)
        self._lines.put("")  # end of output: the worker is gone

    def _next_line(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"the worker said nothing for {timeout} s; the database's sessions:\n"
                + self.describe_database()
            ) from None

    def send(self, request: dg.RunRequest, aim: str = "") -> None:
        """Start one run of `request`, which pauses at the probes of kind `aim`; returns
        once its run process exists."""
        assert self.process.stdin is not None
        body = {"partition_key": request.partition_key, "tags": dict(request.tags), "aim": aim}
        self.process.stdin.write((json.dumps(body) + "\n").encode())
        self.process.stdin.flush()
        line = self._next_line(RUN_TIMEOUT)
        assert line.startswith("started "), f"the worker did not start a run ({line!r})"
        self.run_pid = int(line.split()[1])

    def finished(self) -> str | None:
        """The `ran ...` line if the current run has ended, else None (without waiting)."""
        try:
            return self._lines.get_nowait()
        except queue.Empty:
            return None

    def wait_ran(self, timeout: float = RUN_TIMEOUT) -> str:
        """Wait for the end of the current run; its `ran JOB ok|failed|killed ...` line."""
        line = self._next_line(timeout)
        assert line.startswith("ran "), f"the worker ended without a result ({line!r})"
        return line

    def kill(self) -> float:
        """kill -9 the current run's process; returns when it was sent (time.time()) once
        the process is gone."""
        sent = time.time()
        os.kill(self.run_pid, signal.SIGKILL)
        line = self.wait_ran()
        assert line.endswith(f"killed by signal {signal.SIGKILL.value}"), line
        return sent

    def stop(self) -> None:
        """Close its input and let it end; kill its group if it does not."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


@dataclass(frozen=True)
class Probe:
    """One probe line of a worker: `kind` (copy, committed, completing, handler-start,
    handler-end, run, ran) and its detail."""

    pid: int
    at: float  # time.time() in the worker
    kind: str
    detail: str


class Probes:
    """The probe file the workers append to, read from where the current run began."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.touch()
        self.offset = 0

    def mark(self) -> None:
        """Read only what is written from now on."""
        self.offset = self.path.stat().st_size

    def since_mark(self, pid: int) -> list[Probe]:
        """The probes worker `pid` wrote since the mark (complete lines only)."""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode()
        found = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            who, at, kind, *rest = line.split()
            if int(who) == pid:
                found.append(Probe(int(who), float(at), kind, " ".join(rest)))
        return found


@dataclass(frozen=True)
class Moment:
    """Where a fault is aimed: `delay` seconds after the run request, or the `nth` probe of
    `kind` in the run."""

    kind: str  # "delay" or a probe kind
    nth: int = 1
    delay: float = 0.0

    def reached(self, probes: list[Probe], elapsed: float) -> bool:
        """Whether the run has got there."""
        if self.kind == "delay":
            return elapsed >= self.delay
        return sum(p.kind == self.kind for p in probes) >= self.nth

    def __str__(self) -> str:
        return (
            f"{self.delay:.2f} s after start"
            if self.kind == "delay"
            else f"{self.kind} #{self.nth}"
        )


def random_moment(rng: np.random.Generator, chunks_left: int, typical_run: float) -> Moment:
    """A random moment of a run with `chunks_left` chunks to load, taking about `typical_run`
    seconds: a plain random delay, or a random COPY, chunk commit, the completion or the
    event handler. Each chunk opens three COPYs (two dimensions' staging tables, the facts)."""
    kind = str(
        rng.choice(
            ["delay", "copy", "committed", "completing", "handler-start"],
            p=[0.3, 0.2, 0.2, 0.15, 0.15],
        )
    )
    if kind == "delay":
        return Moment("delay", delay=float(rng.uniform(0.0, typical_run)))
    if kind == "copy":
        return Moment(kind, nth=int(rng.integers(1, 3 * max(chunks_left, 1) + 1)))
    if kind == "committed":
        return Moment(kind, nth=int(rng.integers(1, max(chunks_left, 1) + 1)))
    return Moment(kind)


def wait_for(worker: Worker, probes: Probes, moment: Moment) -> bool:
    """Wait until the run in `worker` reaches `moment` (True) or ends first (False)."""
    started = time.monotonic()
    while time.monotonic() - started < RUN_TIMEOUT:
        if moment.reached(probes.since_mark(worker.run_pid), time.monotonic() - started):
            return True
        line = worker.finished()
        if line is not None:
            assert line.startswith("ran ") and "killed" not in line, line
            return False
        time.sleep(0.01)
    raise AssertionError(f"run {worker.run_pid} reached neither {moment} nor its end")


@dataclass
class FileSpec:
    """A submitted file and what exactly-once means for it."""

    job_id: str
    rows: int
    quarantined: int
    duplicate: int

    @property
    def loaded(self) -> int:
        """Rows that must be in the warehouse, each once."""
        return self.rows - self.quarantined - self.duplicate


def submit_sales(platform: Platform, name: str, rows: int, seed: int) -> FileSpec:
    """Submit a sales file of `rows` valid lines, one in 37 corrupted, plus 9 repeated lines
    (duplicates of valid ones)."""
    frame = sales_frame(rows, seed=seed, order_prefix=Path(name).stem.upper())
    rejected = corrupt(frame, 37)
    valid_rows = [i for i in range(rows) if (i + 1) % 37][:: max(rows // 9, 1)][:9]
    frame = pd.concat([frame, frame.iloc[valid_rows]], ignore_index=True)
    job = platform.submit_file(write_sales_csv(platform.tmp_path / "in" / name, frame))
    return FileSpec(job.job_id, len(frame), sum(rejected.values()), len(valid_rows))


@dataclass
class Handlings:
    """How often the event handler may have run for each event: once, plus once for every
    fault that fell between the handler's end and the record of its outcome (delivery is at
    least once: the outcome commits after the handler returns)."""

    unrecorded: Counter[int] = field(default_factory=Counter)

    def note_fault(self, probes: list[Probe], engine: sa.Engine) -> None:
        """After a fault: count the handlings the faulted run finished but did not record."""
        for probe in probes:
            if probe.kind == "handler-end" and not handler_ok(engine, int(probe.detail)):
                self.unrecorded[int(probe.detail)] += 1


def handler_ok(engine: sa.Engine, event_id: int) -> bool:
    """Whether the test handler's success for the event is recorded."""
    runs = event_handler_runs
    with engine.connect() as conn:
        status = conn.execute(
            sa.select(runs.c.status).where(
                runs.c.event_id == event_id, runs.c.handler == HANDLER_NAME
            )
        ).scalar_one_or_none()
    return status == "ok"


def handled_counts(path: Path) -> Counter[int]:
    """How many times the handler finished, per event id."""
    if not path.exists():
        return Counter()
    return Counter(int(line) for line in path.read_text().split())


def check_exactly_once(
    platform: Platform, spec: FileSpec, handled: Counter[int], handlings: Handlings
) -> Job:
    """The job is completed with its rows exactly once and its event handled once; returns it."""
    job = platform.ledger.get(spec.job_id)
    assert job.status is JobStatus.COMPLETED, (job.status, job.error_type, job.error_message)
    counters = (job.rows_total, job.rows_loaded, job.rows_quarantined, job.rows_duplicate)
    assert counters == (spec.rows, spec.loaded, spec.quarantined, spec.duplicate)
    assert spec.rows == spec.loaded + spec.quarantined + spec.duplicate
    with platform.ledger.engine.connect() as conn:
        facts, keys = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT (order_id, sku)) FROM sales_fact WHERE job_id = :j"
            ),
            {"j": spec.job_id},
        ).one()
        kept = conn.execute(
            sa.select(sa.func.count()).where(quarantined_rows.c.job_id == spec.job_id)
        ).scalar_one()
        found = conn.execute(
            sa.select(events.c.id, events.c.status, events.c.payload).where(
                events.c.job_id == spec.job_id, events.c.topic == TRANSACTION_PARSED
            )
        ).all()
        runs = conn.execute(
            sa.select(event_handler_runs.c.handler, event_handler_runs.c.status).where(
                event_handler_runs.c.event_id.in_([row.id for row in found])
            )
        ).all()
    assert (facts, keys) == (spec.loaded, spec.loaded)  # every valid row, once
    assert kept == spec.quarantined  # each rejected row quarantined once
    [event] = found  # one event: the completion committed once
    assert event.payload["rows_loaded"] == spec.loaded
    assert event.status == "done", f"event {event.id} of job {spec.job_id} is {event.status}"
    assert [(run.handler, run.status) for run in runs] == [(HANDLER_NAME, "ok")]
    assert handled[event.id] == 1 + handlings.unrecorded[event.id], (
        f"event {event.id} handled {handled[event.id]} times"
    )
    return job


class Rig:
    """The platform around the workers: the real sensors in this process (LocalDaemon), the
    workers as the run processes, and what the test noted about each fault."""

    def __init__(
        self,
        platform: Platform,
        env: Mapping[str, str],
        probes: Probes,
        handled_file: Path,
        log: Path,
    ) -> None:
        self.platform = platform
        self.instance = platform.daemon.instance
        self.env = dict(env)
        self.probes = probes
        self.handled_file = handled_file
        self.log = log
        self.handlings = Handlings()
        self.worker: Worker | None = None
        self.run_seconds: list[float] = []

    @property
    def engine(self) -> sa.Engine:
        """The test's own engine, straight to the database (never through a proxy)."""
        return self.platform.ledger.engine

    def take_worker(self) -> Worker:
        """The worker (started on first use)."""
        if self.worker is None:
            self.worker = Worker(self.env, self.log, self.database_sessions)
        return self.worker

    def close(self) -> None:
        """Stop the worker."""
        if self.worker is not None:
            self.worker.stop()

    def dispatch(self, job_id: str) -> dg.RunRequest:
        """One dispatch tick, which must claim the job (its retry may be due in a moment)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            requests = self.platform.daemon.tick("dispatch_sensor")
            assert [r.partition_key for r in requests] in ([], [job_id]), requests
            if requests:
                return requests[0]
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} was never dispatched: {self.job(job_id)}")

    def job(self, job_id: str) -> Job:
        """The job as the ledger has it now."""
        return self.platform.ledger.get(job_id)

    def chunks_left(self, spec: FileSpec) -> int:
        """Chunks the job's next attempt has to load (all of them before the first load)."""
        checkpoint = self.job(spec.job_id).checkpoint or {}
        total = checkpoint.get("chunks_total") or -(-spec.rows // int(self.env["CHUNK_ROWS"]))
        return int(total) - int(checkpoint.get("chunks_done", 0))

    def typical_run(self) -> float:
        """Seconds a whole run took so far (the median), for random delays."""
        return float(np.median(self.run_seconds)) if self.run_seconds else 4.0

    def run(self, request: dg.RunRequest) -> str:
        """Run one request to its end in the live worker; the worker's result line."""
        worker = self.take_worker()
        self.probes.mark()
        started = time.monotonic()
        worker.send(request)
        line = worker.wait_ran()
        self.run_seconds.append(time.monotonic() - started)
        return line

    def database_sessions(self) -> str:
        """The database's other sessions, one a line: state, wait, transaction age, query."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, "
                    "left(query, 100) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        return "\n".join(" | ".join(str(value) for value in row) for row in rows)

    def server_in_copy(self) -> bool:
        """Whether a session of the database is inside a COPY right now."""
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND state = 'active' AND query ILIKE 'COPY %'"
                    )
                ).scalar_one()
            )

    def reap(self) -> None:
        """One reaper tick."""
        self.platform.daemon.tick("reaper_sensor")

    def wait_until_stale(self) -> None:
        """Let the heartbeat a dead run left go stale (STUCK_AFTER_SECONDS)."""
        time.sleep(float(self.env["STUCK_AFTER_SECONDS"]) + 0.2)

    def settle(self, job_id: str) -> Job:
        """Run the job to completion the way the product does: the reaper takes back an
        attempt whose run ended without the outcome, the dispatcher starts the next one."""
        for _ in range(12):
            job = self.job(job_id)
            if job.status is JobStatus.COMPLETED:
                return job
            if job.status is JobStatus.PROCESSING:
                self.reap()  # its run has ended: requeued at once, as a timeout
                continue
            assert job.status is JobStatus.PENDING, (job.status, job.error_type, job.error_message)
            self.run(self.dispatch(job_id))
        raise AssertionError(f"job {job_id} did not complete: {self.job(job_id)}")

    def settle_events(self, job_id: str) -> None:
        """If the job's event still has handlers to run (its run died after the commit), let
        the reaper run them once the event is older than the stuck threshold."""
        with self.engine.connect() as conn:
            waiting = conn.execute(
                sa.select(sa.func.count()).where(
                    events.c.job_id == job_id, events.c.status != "done"
                )
            ).scalar_one()
        if waiting:
            self.wait_until_stale()
            self.reap()

    def handled(self) -> Counter[int]:
        """How many times the handler finished, per event."""
        return handled_counts(self.handled_file)


def worker_env(
    overrides: Mapping[str, object], dagster_home: str, files: Mapping[str, Path], pause: float
) -> dict[str, str]:
    """The environment of a worker: the settings `overrides` (by field name), the instance,
    the probe and handled files (`files["probe"]`, `files["handled"]`), the probes' pause."""
    env = os.environ | {name.upper(): str(value) for name, value in overrides.items()}
    return env | {
        "DAGSTER_HOME": dagster_home,
        "PYTHONPATH": str(REPO),
        "LOG_LEVEL": "ERROR",
        "FAULT_PROBE_FILE": str(files["probe"]),
        "FAULT_HANDLED_FILE": str(files["handled"]),
        "FAULT_PAUSE_SECONDS": str(pause),
    }
