"""What operators call, at a million jobs: every read of the ops API, the dashboard, the CLI and
the alert and health rules, timed on PostgreSQL in process and through the real HTTP server.

    python benchmarks/bench_ops_surface.py [--jobs 1000000] [--quarantined-rows 10000000]
        [--events 1000000] [--repeat 20] [--http-repeat 7]

Seeds a scratch database (set-based INSERT ... SELECT generate_series, then VACUUM ANALYZE as
autovacuum would), then prints the median of each call against its target: 10 ms for the
server-side work (the read model's call, in process), 50 ms end to end over HTTP (`etl api`
in a subprocess, one keep-alive connection) and for `etl jobs list|stats` (in process: the
Python start-up of a new `etl` process, ~1-2 s of imports, is printed apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def median_ms(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of `action()` in milliseconds, after one warm-up call."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def report(title: str, results: dict[str, float], target_ms: float) -> bool:
    """Print each figure against the target; True when all are under it."""
    print(f"\n{title} (median, target < {target_ms:.0f} ms)")
    width = max(len(name) for name in results)
    for name, ms in results.items():
        print(f"  {name:<{width}}  {ms:8.2f} ms  {'ok' if ms < target_ms else 'SLOW'}")
    return all(ms < target_ms for ms in results.values())


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
        conn.exec_driver_sql("VACUUM ANALYZE jobs, quarantined_rows, events")
    engine.dispose()


def main() -> None:
    """Seed, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--quarantined-rows", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--http-repeat", type=int, default=7)
    args = parser.parse_args()

    import requests
    from click.testing import CliRunner
    from common import machine, scratch_postgres
    from test_ledger_scale import OPS_READS

    from etl_assets.cli import main as etl_main
    from etl_assets.db import create_engine

    print(f"machine: {machine()}")
    print(f"scale: {args.jobs:,} jobs, {args.quarantined_rows:,} quarantined rows, "
          f"{args.events:,} events")  # fmt: skip
    with scratch_postgres() as url:
        seed(url, args.jobs, args.quarantined_rows, args.events)
        engine = create_engine(url)
        server = {
            name: median_ms(lambda r=read: r(engine), args.repeat)  # type: ignore[misc]
            for name, read in OPS_READS.items()
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
            dashboard = {
                "dashboard refresh (/v1/metrics + /v1/activity + /v1/uploads/active)": sum(
                    http[p] for p in ("/v1/metrics", "/v1/activity", "/v1/uploads/active")
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
    print("\nall under target" if ok else "\nSOME CALLS ARE OVER TARGET")


def _newest_job_id(engine: object) -> str:
    from etl_assets.ops import read_model as rm

    return rm.list_jobs(engine, limit=1).items[0].job_id  # type: ignore[arg-type]


def _invoke(runner: object, command: object, argv: list[str], env: dict[str, str]) -> None:
    result = runner.invoke(command, argv, env=env)  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output


if __name__ == "__main__":
    main()
