"""What operators call, at a million jobs: every read of the ops API, the dashboard, the CLI and
the alert and health rules, timed on PostgreSQL in process and through the real HTTP server.

    python benchmarks/bench_ops_surface.py [--jobs 1000000] [--quarantined-rows 10000000]
        [--events 1000000] [--repeat 20] [--http-repeat 7] [--reuse NAME]

Seeds a scratch database (set-based INSERT ... SELECT generate_series, then VACUUM ANALYZE as
autovacuum would), then prints the median of each call against its target: 10 ms for the
server-side work (the read model's call, in process), 50 ms end to end over HTTP (`etl api`
in a subprocess, one keep-alive connection) and for `etl jobs list|stats` (in process: the
Python start-up of a new `etl` process, ~1-2 s of imports, is printed apart).

Seeding takes ~10 minutes. `--reuse NAME` seeds into the database NAME on the same server
and keeps it afterwards; a later run with the same NAME and scale upgrades its schema,
moves the times of the seed's last day of jobs and events forward so the newest job
finished just now (the windowed figures then see what a fresh seed shows; the older jobs
and the quarantined rows keep their times, which no window reads), VACUUM ANALYZEs and
measures without seeding again. Drop it with `dropdb NAME` when done.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "etl_assets_tests"))  # the seed and the reads the tests check

SERVER_TARGET_MS = 10.0
HTTP_TARGET_MS = 50.0
TOKEN = "bench-viewer-token"  # a throw-away token for the scratch server only
HTTP_READS = [
    "/v1/jobs",
    "/v1/jobs?status=failed",
    "/v1/jobs?dataset=sales&sort=-completed_at",
    "/v1/jobs/{job_id}",
    "/v1/failed-rows",
    "/v1/failed-rows?job_id={job_id}",
    "/v1/uploads/active",
    "/v1/metrics",
    "/v1/activity",
    "/metrics",
    "/readyz",
    "/healthz",
]


class Timing(NamedTuple):
    """Wall times of repeated calls, in milliseconds: the median (what the target is about)
    and the fastest (what the call costs when nothing else wants the cores: on a shared
    machine the gap between the two is the others' load)."""

    median: float
    fastest: float


def median_ms(action: Callable[[], object], repeat: int) -> Timing:
    """Median and fastest wall time of `action()` in milliseconds, after one warm-up call."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return Timing(statistics.median(times), min(times))


def report(title: str, results: dict[str, Timing], target_ms: float) -> bool:
    """Print each median (and fastest) against the target; True when all medians are under."""
    print(f"\n{title} (median and fastest, target < {target_ms:.0f} ms)")
    width = max(len(name) for name in results)
    for name, (ms, fastest) in results.items():
        verdict = "ok" if ms < target_ms else "SLOW"
        print(f"  {name:<{width}}  {ms:8.2f} ms  (fastest {fastest:7.2f})  {verdict}")
    return all(t.median < target_ms for t in results.values())


@contextmanager
def api_server(url: str) -> Iterator[str]:
    """`etl api` on a free port over the database at `url`; yields its base URL."""
    import requests
    from ops_seed import free_port

    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "OPS_API_VIEWER_TOKENS": TOKEN,
        "LOG_LEVEL": "WARNING",  # the access log would time the terminal, not the server
    }
    env.pop("DAGSTER_HOME", None)  # the ledger's figures only, no daemon check
    etl = str(Path(sys.executable).with_name("etl"))
    process = subprocess.Popen([etl, "api", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("etl api did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def seed(url: str, jobs: int, rows: int, events: int) -> None:
    """The ledger at scale, then VACUUM ANALYZE (the visibility map lets index-only scans
    skip the heap, as autovacuum leaves a settled table)."""
    from test_ledger_scale import seed_finished_jobs, seed_quarantine_and_events

    from etl_assets.db import create_engine

    engine = create_engine(url)
    started = time.perf_counter()
    seed_finished_jobs(engine, jobs)
    print(f"seeded {jobs:,} jobs in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    seed_quarantine_and_events(engine, jobs, rows, events)
    print(
        f"seeded {rows:,} quarantined rows and {events:,} events in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE jobs, quarantined_rows, events, job_finished_minutes")
    engine.dispose()


@contextmanager
def seeded_database(reuse: str | None, jobs: int, rows: int, events: int) -> Iterator[str]:
    """A database seeded at the scale asked: a scratch one dropped afterwards, or with
    `reuse` the database of that name, kept (seeded only when it does not hold that scale)."""
    from common import POSTGRES_ADMIN_URL, scratch_postgres
    from sqlalchemy.engine import make_url

    from etl_assets import migrations
    from etl_assets.db import create_engine

    if reuse is None:
        with scratch_postgres() as url:
            seed(url, jobs, rows, events)
            yield url
        return
    if not reuse.isidentifier():
        raise SystemExit(f"--reuse: {reuse!r} is not a plain database name")
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": reuse}
        ).first()
        if not exists:
            conn.exec_driver_sql(f"CREATE DATABASE {reuse}")
    admin.dispose()
    url = make_url(POSTGRES_ADMIN_URL).set(database=reuse).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrations.upgrade(engine)
    if _seeded_scale(engine) == (jobs, rows, events):
        print(f"reusing database {reuse}, seeded at this scale", flush=True)
        _bring_up_to_date(engine)
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE jobs, quarantined_rows, events CASCADE")
        seed(url, jobs, rows, events)
    engine.dispose()
    yield url
    print(f"kept database {reuse} (dropdb {reuse} when done)")


def _seeded_scale(engine: object) -> tuple[int, int, int]:
    """(finished jobs, quarantined rows, events) the database holds, from the trigger-kept
    counts (the events by a count: a million rows, once per run)."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        finished = conn.exec_driver_sql(
            "SELECT coalesce(sum(jobs), 0) FROM job_status_counts"
            " WHERE status IN ('completed', 'failed')"
        ).scalar_one()
        rows = conn.exec_driver_sql(
            "SELECT coalesce(sum(rows), 0) FROM quarantined_row_counts"
        ).scalar_one()
        events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    return int(finished), int(rows), int(events)


def _bring_up_to_date(engine: object) -> None:
    """Move the times of the seed's last 25 hours of jobs and events forward by the seed's
    age, so the newest job finished now and the last hour and day hold what they held just
    after seeding (every window the benchmark reads is a day at most; moving all 1,000,000
    jobs took over 10 minutes on a loaded machine). Older jobs keep their times: the gap
    this leaves, a day back, is outside every window read."""
    started = time.perf_counter()
    with engine.begin() as conn:  # type: ignore[attr-defined]
        end = conn.exec_driver_sql(
            "SELECT max(completed_at) FROM jobs WHERE status = 'completed'"
        ).scalar_one()
        age = conn.exec_driver_sql("SELECT now() - %(end)s", {"end": end}).scalar_one()
        if end is not None and age.total_seconds() > 60:
            shift = {"age": age, "from": end - dt.timedelta(hours=25)}
            conn.exec_driver_sql(
                "UPDATE jobs SET created_at = created_at + %(age)s,"
                " updated_at = updated_at + %(age)s, completed_at = completed_at + %(age)s,"
                " last_heartbeat_at = last_heartbeat_at + %(age)s"
                " WHERE updated_at >= %(from)s",
                shift,
            )
            conn.exec_driver_sql(
                "UPDATE events SET created_at = created_at + %(age)s,"
                " dispatched_at = dispatched_at + %(age)s WHERE created_at >= %(from)s",
                shift,
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("VACUUM ANALYZE jobs, quarantined_rows, events, job_finished_minutes")
    print(f"moved the seed's times forward and vacuumed in {time.perf_counter() - started:.0f} s")


def main() -> None:
    """Seed, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--quarantined-rows", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--http-repeat", type=int, default=7)
    parser.add_argument(
        "--reuse",
        metavar="NAME",
        help="seed into (or reuse) the database NAME and keep it afterwards",
    )
    args = parser.parse_args()

    import requests
    from click.testing import CliRunner
    from common import machine
    from test_ledger_scale import OPS_READS

    from etl_assets.cli import main as etl_main
    from etl_assets.db import create_engine

    print(f"machine: {machine()}")
    print(f"scale: {args.jobs:,} jobs, {args.quarantined_rows:,} quarantined rows, "
          f"{args.events:,} events")  # fmt: skip
    with seeded_database(args.reuse, args.jobs, args.quarantined_rows, args.events) as url:
        engine = create_engine(url)
        print(f"load average before measuring: {_load()}", flush=True)
        server = {
            # What any read costs before its own work: a pooled connection (pre-ping,
            # rollback) and one trivial statement. On a loaded machine, read the others
            # against it.
            "floor: a pooled connection and SELECT 1": median_ms(
                lambda: _select_one(engine), args.repeat
            ),
            **{
                name: median_ms(lambda r=read: r(engine), args.repeat)  # type: ignore[misc]
                for name, read in OPS_READS.items()
            },
        }
        job_id = _newest_job_id(engine)
        engine.dispose()
        ok = report("server side: the read model's calls, in process", server, SERVER_TARGET_MS)

        with api_server(url) as base:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {TOKEN}"

            def get(path: str) -> None:
                response = session.get(base + path, timeout=30)
                assert response.status_code == 200, (path, response.status_code, response.text)

            paths = [path.format(job_id=job_id) for path in HTTP_READS]
            http = {
                template: median_ms(lambda p=path: get(p), args.http_repeat)
                for template, path in zip(HTTP_READS, paths, strict=True)
            }
            dashboard_calls = ("/v1/metrics", "/v1/activity", "/v1/uploads/active")
            dashboard = {
                "dashboard refresh (/v1/metrics + /v1/activity + /v1/uploads/active)": Timing(
                    sum(http[p].median for p in dashboard_calls),
                    sum(http[p].fastest for p in dashboard_calls),
                )
            }
        ok &= report("over HTTP: `etl api`, one keep-alive connection", http, HTTP_TARGET_MS)
        report("the dashboard's data calls, one after another", dashboard, 3 * HTTP_TARGET_MS)

        runner = CliRunner()
        env = {"DATABASE_URL": url}
        cli = {
            f"etl {' '.join(argv)}": median_ms(
                lambda a=argv: _invoke(runner, etl_main, a, env), args.http_repeat
            )
            for argv in (
                ["jobs", "list"],
                ["jobs", "list", "--status", "failed"],
                ["jobs", "stats"],
            )
        }
        ok &= report("etl (in process, without the Python start-up)", cli, HTTP_TARGET_MS)
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).with_name("etl")), "jobs", "stats"],
            env=os.environ | env,
            check=True,
            capture_output=True,
        )
        print(f"  a new `etl jobs stats` process, start-up included: "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
    print(f"load average after measuring: {_load()}")
    print("\nall under target" if ok else "\nSOME CALLS ARE OVER TARGET")


def _select_one(engine: object) -> None:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("SELECT 1").scalar_one()


def _load() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine, how far to trust the
    figures."""
    return ", ".join(f"{n:.2f}" for n in os.getloadavg()) + f" ({os.cpu_count()} cores)"


def _newest_job_id(engine: object) -> str:
    from etl_assets.ops import read_model as rm

    return rm.list_jobs(engine, limit=1).items[0].job_id  # type: ignore[arg-type]


def _invoke(runner: object, command: object, argv: list[str], env: dict[str, str]) -> None:
    result = runner.invoke(command, argv, env=env)  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output


if __name__ == "__main__":
    main()
