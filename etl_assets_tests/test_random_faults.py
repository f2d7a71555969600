"""Faults at any moment: `kill -9` of a real run process and cuts of its database connections,
at random moments of multi-chunk jobs; after each, the job completes on a later attempt with
its rows exactly once and its event handled once.

PostgreSQL only (COPY, and the TCP proxy in front of the server). The moments come from a
seeded generator: the seed is printed, and ETL_FAULT_SEED replays a run
(ETL_FAULT_KILLS / ETL_FAULT_CUTS change how many faults). The runs happen in warm worker
processes (fault_worker.py) that write a probe line at each moment worth hitting (inside a
COPY, after a chunk's commit, inside the completion, inside the event handler), so the
faults are aimed at phases as well as at plain random delays; fault_rig.py drives the
platform around them as the product does (dispatch sensor, reaper, run monitoring).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from conftest import Platform, emptied, platform_for
from fault_rig import (
    Probe,
    Probes,
    Rig,
    check_exactly_once,
    handled_counts,
    random_moment,
    submit_sales,
    wait_for,
    worker_env,
)
from fault_worker import HANDLER_NAME, configure, register_test_handler
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from etl_assets.config import Settings
from etl_assets.db import utcnow
from etl_assets.events.store import (
    TRANSACTION_PARSED,
    events,
    list_events,
    record_event,
    unregister_handler,
)
from etl_assets.ledger import JobStatus
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.runs.recovery import WAITING_STATUSES, find_run

SEED = int(os.environ.get("ETL_FAULT_SEED", "20261201"))
KILLS = int(os.environ.get("ETL_FAULT_KILLS", "20"))
CUTS = int(os.environ.get("ETL_FAULT_CUTS", "10"))
CHUNK_ROWS = 250
PAUSE_SECONDS = 0.03  # the pause at the probes a fault aims at: widens that moment


def settings_for(url: str, tmp_path: Path, api: ReferenceApiServer, **extra: object) -> dict:
    """The settings (by field name) of a fault test: small chunks, a 1 s stuck threshold,
    attempts enough for several faults per job."""
    return {
        "data_dir": str(tmp_path / "data"),
        "database_url": url,
        "fx_api_url": api.fx_url,
        "catalog_api_url": api.catalog_url,
        "inbox_settle_seconds": 0.0,
        "chunk_rows": CHUNK_ROWS,
        "heartbeat_seconds": 0.25,
        "stuck_after_seconds": 1,
        "backoff_base_seconds": 0.01,
        "backoff_jitter": 0.0,
        "jobs_per_run": 1,
        "retry_max_attempts": 8,
        **extra,
    }


@pytest.fixture
def rng() -> np.random.Generator:
    """The faults' random generator, seeded (printed, so a failure can be replayed)."""
    print(f"\nfault seed {SEED} (ETL_FAULT_SEED={SEED} replays it)")
    return np.random.default_rng(SEED)


@pytest.fixture
def handler_files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The probe and handled-events files; the test handler registered in this process too
    (an event the reaper dispatches here runs the same handler as in a run)."""
    files = {"probe": tmp_path / "probes.log", "handled": tmp_path / "handled.log"}
    configure(str(files["probe"]), str(files["handled"]), PAUSE_SECONDS)
    register_test_handler()
    yield files
    unregister_handler(TRANSACTION_PARSED, HANDLER_NAME)
    configure("", "", PAUSE_SECONDS)


def make_rig(
    overrides: dict, worker_url: str, instance: dg.DagsterInstance, tmp_path: Path, files: dict
) -> Rig:
    """The platform on `overrides` in this process; workers on the same settings, except
    that they reach the database at `worker_url`."""
    platform: Platform = platform_for(Settings(**overrides).resolved(), instance, tmp_path)
    env = worker_env(
        overrides | {"database_url": worker_url}, instance.root_directory, files, PAUSE_SECONDS
    )
    return Rig(platform, env, Probes(files["probe"]), files["handled"], tmp_path / "workers.log")


def phase_of(probes: list[Probe], rig: Rig, job_id: str, at: float, aim: str, in_copy: bool) -> str:
    """Which phase of the job a fault at `at` (time.time()) landed in, from the run's last
    probe and the ledger. Inside a COPY: the server said so just before, or the fault came
    within the pause a run aimed at COPYs makes as one begins (it cannot have gone on)."""
    job = rig.job(job_id)
    last = probes[-1].kind if probes else "none"
    paused = aim == "copy" and last == "copy" and at - probes[-1].at < PAUSE_SECONDS
    in_copy = in_copy or paused
    if job.status is JobStatus.COMPLETED:
        if last in ("handler-start", "handler-end"):
            return "event handler"
        return "after completion" if last == "completing" else "after the handlers"
    if last == "copy":
        return "inside a COPY" if in_copy else "in a chunk's transaction"
    if last == "committed":
        checkpoint = job.checkpoint or {}
        if checkpoint.get("chunks_done") == checkpoint.get("chunks_total"):
            return "between the last commit and the completion"
        return "between a chunk's commit and the next"
    if last == "completing":
        return "inside the completion transaction"
    if last == "step":
        return {
            "read_source": "reading and validating the file",
            "enrich_step": "enrichment",
            "load_rows": "the load, before its first COPY",
        }[probes[-1].detail]
    return "starting the run" if last == "run" else "before the run process began"


def test_kill_9_at_random_moments_never_loses_or_doubles_a_row(
    postgres_url: str,
    tmp_path: Path,
    api: ReferenceApiServer,
    instance: dg.DagsterInstance,
    rng: np.random.Generator,
    handler_files: dict[str, Path],
) -> None:
    """KILLS kill -9s of the run process, 3 to 5 per job (one per attempt), each at a random
    moment; every job then completes with its rows once and its event handled once, and
    each kill cost exactly one attempt (timed out)."""
    url = emptied(postgres_url)
    rig = make_rig(settings_for(url, tmp_path, api), url, instance, tmp_path, handler_files)
    started = time.monotonic()
    landed: list[tuple[str, str, str]] = []  # (job, aimed at, phase)
    timeouts: Counter[str] = Counter()  # attempts each job lost to a kill
    try:
        rig.take_worker()
        number = 0
        while len(landed) < KILLS:
            number += 1
            rows = int(rng.integers(5, 9)) * CHUNK_ROWS - int(rng.integers(0, CHUNK_ROWS))
            spec = submit_sales(rig.platform, f"kill{number}.csv", rows, seed=number)
            for _ in range(int(rng.integers(3, 6))):  # kills of this job, one per attempt
                if len(landed) == KILLS or rig.job(spec.job_id).status is JobStatus.COMPLETED:
                    break
                request = rig.dispatch(spec.job_id)
                worker = rig.take_worker()
                moment = random_moment(rng, rig.chunks_left(spec), rig.typical_run())
                rig.probes.mark()
                worker.send(request, aim=moment.kind)
                if not wait_for(worker, rig.probes, moment):
                    break  # the run ended first: the job is done, no kill
                in_copy = moment.kind == "copy" and rig.server_in_copy()
                killed_at = worker.kill()
                probes = rig.probes.since_mark(worker.run_pid)
                phase = phase_of(probes, rig, spec.job_id, killed_at, moment.kind, in_copy)
                landed.append((spec.job_id, str(moment), phase))
                rig.handlings.note_fault(probes, rig.engine)
                recover_after_kill(rig, spec.job_id, rng, timeouts)
            rig.settle(spec.job_id)
            rig.settle_events(spec.job_id)
            job = check_exactly_once(rig.platform, spec, rig.handled(), rig.handlings)
            outcomes = [a["outcome"] for a in rig.platform.ledger.attempts(spec.job_id)]
            assert outcomes == ["timed_out"] * timeouts[spec.job_id] + ["succeeded"], outcomes
            assert job.retry_count == timeouts[spec.job_id]
    finally:
        rig.close()
    phases = Counter(phase for _, _, phase in landed)
    print(f"{len(landed)} kills in {time.monotonic() - started:.0f} s, by phase:")
    for job_id, moment, phase in landed:
        print(f"  job {job_id}: aimed at {moment}: landed {phase}")
    print(dict(phases))
    assert len(landed) == KILLS
    wanted = {
        "inside a COPY",
        "between a chunk's commit and the next",
        "inside the completion transaction",
        "event handler",
    }
    assert len(wanted & set(phases)) >= 3, phases  # the kills did not all land in one place
    assert len(phases) >= 4, phases


def recover_after_kill(
    rig: Rig, job_id: str, rng: np.random.Generator, timeouts: Counter[str]
) -> None:
    """Take the killed attempt back as the product does: run monitoring marks the dead run
    failed and the reaper requeues its job at once, or (no monitoring yet) the job's heartbeat
    goes stale and the reaper terminates the run and requeues the job. A job the run had
    already completed stays completed."""
    job = rig.job(job_id)
    if job.status is JobStatus.COMPLETED:
        return
    assert job.status is JobStatus.PROCESSING, (job.status, job.error_message)
    by_monitoring = rng.random() < 0.5  # drawn every time: the seed's sequence stays the same
    run = find_run(rig.instance, job)
    if run is not None and run.status in WAITING_STATUSES:
        # Killed before its run started: the reaper leaves a run that waits for a slot alone
        # however stale the job; run monitoring's start timeout is what fails it.
        by_monitoring = True
    if by_monitoring and run is not None and not run.is_finished:
        # What Dagster's run monitoring does when it finds a run's process gone.
        rig.instance.report_run_failed(run, message="run worker process died (kill -9)")
    else:
        rig.wait_until_stale()
    rig.reap()
    after = rig.job(job_id)
    assert after.status is JobStatus.PENDING, (after.status, after.error_message)
    assert after.error_type is not None and after.error_type.value == "timeout"
    timeouts[job_id] += 1


def test_database_connections_cut_at_random_moments_cost_at_most_attempts(
    postgres_url: str,
    tmp_path: Path,
    api: ReferenceApiServer,
    instance: dg.DagsterInstance,
    rng: np.random.Generator,
    handler_files: dict[str, Path],
) -> None:
    """Every connection of the run is dropped (a TCP proxy in front of PostgreSQL) and the
    server is unreachable for a random 0.05-0.4 s; in-run retries wait longer than that."""
    url = emptied(postgres_url)
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    overrides = settings_for(url, tmp_path, api, backoff_base_seconds=0.5)
    rig = make_rig(overrides, via_proxy, instance, tmp_path, handler_files)
    started = time.monotonic()
    landed: list[tuple[str, str, str]] = []
    try:
        number = 0
        while len(landed) < CUTS:
            number += 1
            rows = int(rng.integers(4, 7)) * CHUNK_ROWS - int(rng.integers(0, CHUNK_ROWS))
            spec = submit_sales(rig.platform, f"cut{number}.csv", rows, seed=100 + number)
            for _ in range(int(rng.integers(1, 4))):  # attempts with a cut in them
                job = rig.job(spec.job_id)
                if len(landed) == CUTS or job.status is JobStatus.COMPLETED:
                    break
                if job.status is JobStatus.PROCESSING:
                    rig.reap()  # the last run ended without the outcome
                    continue
                worker = rig.take_worker()
                moment = random_moment(rng, rig.chunks_left(spec), rig.typical_run())
                rig.probes.mark()
                worker.send(rig.dispatch(spec.job_id), aim=moment.kind)
                if not wait_for(worker, rig.probes, moment):
                    continue  # the run ended first
                cut_at = time.time()
                proxy.cut()
                down = float(rng.uniform(0.05, 0.4))
                probes = rig.probes.since_mark(worker.run_pid)
                phase = phase_of(probes, rig, spec.job_id, cut_at, moment.kind, False)
                landed.append((spec.job_id, str(moment), phase))
                time.sleep(down)
                proxy.restore()
                worker.wait_ran()
                rig.handlings.note_fault(rig.probes.since_mark(worker.run_pid), rig.engine)
            rig.settle(spec.job_id)
            rig.settle_events(spec.job_id)
            check_exactly_once(rig.platform, spec, rig.handled(), rig.handlings)
            outcomes = [a["outcome"] for a in rig.platform.ledger.attempts(spec.job_id)]
            assert outcomes[-1] == "succeeded" and outcomes.count("succeeded") == 1, outcomes
    finally:
        rig.close()
        proxy.close()
    print(f"{len(landed)} cuts in {time.monotonic() - started:.0f} s:")
    for job_id, moment, phase in landed:
        print(f"  job {job_id}: cut at {moment}: {phase}")
    assert len(landed) == CUTS
    assert len({phase for _, _, phase in landed}) >= 3


def test_the_reaper_runs_the_handlers_of_an_event_a_dead_run_left_pending(
    postgres_url: str,
    tmp_path: Path,
    api: ReferenceApiServer,
    instance: dg.DagsterInstance,
    handler_files: dict[str, Path],
) -> None:
    """What the kills inside the handler found: the job completed, its event pending, and
    nothing ever ran the handlers. The reaper runs them once the event is older than the
    stuck threshold (a live run would have run them by then), and only once."""
    url = emptied(postgres_url)
    platform = platform_for(
        Settings(**settings_for(url, tmp_path, api)).resolved(), instance, tmp_path
    )
    engine = platform.ledger.engine
    with engine.begin() as conn:  # committed with a job's completion; then the run died
        event_id = record_event(conn, TRANSACTION_PARSED, {"rows_loaded": 1})

    platform.daemon.tick("reaper_sensor")
    assert handled_counts(handler_files["handled"]) == {}  # young: its run may be at it

    with engine.begin() as conn:
        conn.execute(events.update().values(created_at=utcnow() - dt.timedelta(seconds=5)))
    platform.daemon.tick("reaper_sensor")
    platform.daemon.tick("reaper_sensor")
    assert handled_counts(handler_files["handled"]) == {event_id: 1}
    [event] = list_events(engine)
    assert event["status"] == "done"
    assert [(h["handler"], h["status"]) for h in event["handlers"]] == [(HANDLER_NAME, "ok")]
