"""The project's job against the loaders a user would pick instead, on the same file, in one run.

    python benchmarks/bench_peers.py [--rows 1000000] [--peers-python PATH] [--no-delete-insert]

Contenders, each into its own fresh scratch PostgreSQL database, each loading the benchmark's
sales file fresh and then the same rows again (every row conflicts on the key):
- the project's job (validate, enrich, transform, upsert, ledger), through
  `bench_large_file.run_job_in_child`;
- dlt, `merge` on (order_id, sku) with the `upsert` strategy (and `delete-insert` unless
  --no-delete-insert), Arrow record batches read from the file, the `csv` loader file format;
- sling, the CSV file into PostgreSQL in `incremental` mode with the primary key (a full-data
  upsert: no update key).
The peers' tables get sales_fact's primary key and two secondary btrees (the load's lineage
column and order_date) before their fresh load, as the job's tables have from the migrations.

dlt and sling run in a separate virtual environment (`make bench-peers` builds it from
benchmarks/peers-requirements.txt): this file's peer modes import only the standard library
at module level, so the peers' interpreter can run it. Each load is a child process; its peak
RSS is its own VmHWM (dlt, the job) or, for sling's binary, the rusage of the waited-for
binary under a small launcher (see `sling_child`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_PYTHON = BENCH / ".peers-venv" / "bin" / "python"
TABLE = "sales_peer"
KEY = ("order_id", "sku")  # sales_fact's primary key: the dataset's natural key
# The file's columns as PostgreSQL types, as sales_fact declares them.
COLUMNS = {
    "order_id": "varchar(64)",
    "order_date": "date",
    "customer_id": "varchar(64)",
    "sku": "varchar(64)",
    "quantity": "integer",
    "unit_price": "numeric(18,4)",
    "currency": "varchar(3)",
    "store_id": "varchar(64)",
}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def keys_sql(schema: str, lineage: str) -> list[str]:
    """The primary key and the two secondary indexes sales_fact has, for a peer's table.

    `lineage` is the peer's own per-load column, standing in for sales_fact's job_id.
    """
    table = f"{schema}.{TABLE}"
    return [
        f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(KEY)})",
        f"CREATE INDEX ix_{TABLE}_lineage ON {table} ({lineage})",
        f"CREATE INDEX ix_{TABLE}_order_date ON {table} (order_date)",
    ]


# --- dlt (runs in the peers' environment) -------------------------------------------------


def arrow_batches(path: Path, limit: int | None = None) -> Iterator[Any]:
    """The file as Arrow record batches, typed as sales_fact types them, read as a stream."""
    import pyarrow as pa
    from pyarrow import csv

    types = {
        "order_id": pa.string(),
        "order_date": pa.date32(),
        "customer_id": pa.string(),
        "sku": pa.string(),
        "quantity": pa.int32(),
        "unit_price": pa.decimal128(18, 4),
        "currency": pa.string(),
        "store_id": pa.string(),
    }
    reader = csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=8 << 20),
        convert_options=csv.ConvertOptions(column_types=types),
    )
    seen = 0
    for batch in reader:
        if limit is not None:
            batch = batch.slice(0, limit - seen)
        seen += batch.num_rows
        yield batch
        if limit is not None and seen >= limit:
            return


def dlt_child(args: argparse.Namespace) -> None:
    """Load the file with dlt's merge into `peers.sales_peer`; print JSON figures.

    The fresh phase first creates the table with one row, empties it and adds the keys
    (untimed: the job's tables, too, exist before its load), then times the whole file.
    """
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # no network here, nor wanted
    # Arrow rows get no load id by default; it is dlt's lineage column (the job's job_id).
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"] = "true"
    import dlt
    import psycopg2
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    credentials = PostgresCredentials(args.url)
    # dlt insists on a password; the scratch server trusts local connections, so any will do.
    credentials.password = credentials.password or "unused"

    def pipeline_for() -> Any:
        return dlt.pipeline(
            pipeline_name="bench_peers",
            pipelines_dir=str(args.workdir),
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name="peers",
        )

    def resource_of(limit: int | None = None) -> Any:
        return dlt.resource(
            arrow_batches(args.file, limit),
            name=TABLE,
            write_disposition={"disposition": "merge", "strategy": args.strategy},
            primary_key=KEY,
        )

    if args.phase == "fresh":
        pipeline_for().run(resource_of(limit=1), loader_file_format="csv")
        with psycopg2.connect(args.url) as conn, conn.cursor() as cursor:
            cursor.execute(f"TRUNCATE peers.{TABLE}")
            for statement in keys_sql("peers", "_dlt_load_id"):
                cursor.execute(statement)
    pipeline = pipeline_for()
    started = time.perf_counter()
    pipeline.run(resource_of(), loader_file_format="csv")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


# --- sling (runs in the peers' environment) -----------------------------------------------


def sling_binary() -> str:
    """The sling binary the `sling-linux-amd64` package ships (inside its package folder).

    The `sling` package would otherwise download one from GitHub on first use; it takes the
    SLING_BINARY environment variable instead, which the children here set to this path.
    """
    import sling_linux_amd64

    binary: str = sling_linux_amd64.SLING_BIN
    if not binary or not Path(binary).is_file():
        raise SystemExit(f"sling-linux-amd64 ships no binary for this platform ({binary!r})")
    return binary


def sling_child(args: argparse.Namespace) -> None:
    """Run `sling run -r` (the `sling` package's CLI) on a replication of the file; print JSON.

    This process is only a launcher: its own footprint stays a few MB, so the peak RSS of
    the children it waits for (from RUSAGE_CHILDREN: the largest of them, sling's binary) is
    sling's, not a copy of a larger parent's.
    """
    replication = args.workdir / f"replication-{args.phase}.yaml"
    # JSON is YAML; the stream is the file's URL, the object the pre-created keyed table.
    replication.write_text(
        json.dumps(
            {
                "source": "LOCAL",
                "target": "PEERS_PG",
                "defaults": {"mode": "incremental"},
                "streams": {
                    f"file://{args.file}": {
                        "object": f"public.{TABLE}",
                        "primary_key": list(KEY),
                    }
                },
            },
            indent=2,
        )
    )
    env = os.environ | {
        "SLING_BINARY": sling_binary(),
        "PEERS_PG": f"{args.url}?sslmode=disable",
        "SLING_HOME_DIR": str(args.workdir / "sling_home"),
        "SLING_DISABLE_TELEMETRY": "true",
        "SLING_LOADED_AT_COLUMN": "true",  # its per-load lineage column, as dlt's load id
    }
    cli = Path(sys.executable).with_name("sling")
    started = time.perf_counter()
    run = subprocess.run(
        [str(cli), "run", "-r", str(replication)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"sling failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": round(children, 1),
                "launcher_rss_mb": peak_rss_mb(),
            }
        )
    )


def sling_table_sql() -> list[str]:
    """The sling target, created before its fresh load with sales_fact's types and keys."""
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    return [
        f"CREATE TABLE public.{TABLE} ({columns}, _sling_loaded_at bigint)",  # epoch seconds
        *keys_sql("public", "_sling_loaded_at"),
    ]


# --- the parent (runs in the project's environment) --------------------------------------


def peer(
    python: Path, kind: str, phase: str, url: str, path: Path, work: Path, **extra: str
) -> dict[str, Any]:
    """Run one peer load in a child of the peers' interpreter; return its JSON figures."""
    command = [str(python), __file__, "--peer", kind, "--phase", phase, "--url", url]
    command += ["--file", str(path), "--workdir", str(work)]
    for name, value in extra.items():
        command += [f"--{name}", value]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise SystemExit(f"{kind} {phase} failed:\n{child.stdout[-4000:]}\n{child.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


def count_rows(url: str, table: str) -> int:
    """Rows in `table` after a load: each contender must end with the file's rows, once."""
    from etl_assets.db import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
    engine.dispose()
    return rows


def job_counters(url: str) -> list[str]:
    """Each of the job's runs as the ledger counts it, and how many fact rows name each job."""
    from etl_assets.db import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        jobs = conn.exec_driver_sql(
            "SELECT j.job_id, j.rows_loaded, j.rows_quarantined, j.rows_duplicate,"
            " (SELECT count(*) FROM sales_fact f WHERE f.job_id = j.job_id)"
            " FROM jobs j ORDER BY j.created_at"
        ).all()
    engine.dispose()
    return [
        f"loaded {loaded:,}, quarantined {quarantined:,}, duplicate {duplicate:,}; "
        f"fact rows naming it {lineage:,}"
        for _, loaded, quarantined, duplicate, lineage in jobs
    ]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument("--no-delete-insert", action="store_true", help="dlt upsert only")
    for internal in ("peer", "phase", "url", "file", "workdir", "strategy"):
        parser.add_argument(f"--{internal}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        args.file, args.workdir = Path(args.file), Path(args.workdir)
        return dlt_child(args) if args.peer == "dlt" else sling_child(args)
    if not args.peers_python.exists():
        raise SystemExit(f"no {args.peers_python}: `make bench-peers` builds it")

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(BENCH))
    from page_cache import evict_shared_libraries

    # First: the pages of libraries this process has mapped are not dropped.
    peers_env = args.peers_python.absolute().parent.parent
    eviction = evict_shared_libraries(peers_env)
    from bench_large_file import job_env, run_job_in_child
    from common import machine, sales_csv, same_rows_again, scratch_postgres

    from etl_assets.config import Settings
    from etl_assets.db import create_engine
    from etl_assets.reference_api import ReferenceApiServer

    print(f"machine: {machine()}")
    print(eviction)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    path = sales_csv(args.rows)
    print(
        f"input: {path.name}, {path.stat().st_size / 1e6:.0f} MB "
        f"(generated or reused in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    results: dict[str, dict[str, dict[str, Any]]] = {}

    def show(contender: str, phase: str, figures: dict[str, Any]) -> None:
        """Print a figure as soon as it is measured, with the load average it ran under."""
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"  {contender}, {phase}: {figures['seconds']:.2f} s, peak RSS "
            f"{figures['peak_rss_mb']} MB  (load average {load})",
            flush=True,
        )

    def check(contender: str, url: str, table: str) -> None:
        rows = count_rows(url, table)
        if rows != args.rows:
            raise SystemExit(f"{contender}: {rows:,} rows in {table}, expected {args.rows:,}")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_peers_")))
        again = same_rows_again(path)

        with ReferenceApiServer() as api, scratch_postgres() as url:
            env = job_env(url, tmp / "job", api, Settings().chunk_rows)
            fresh = run_job_in_child(env, path)
            check("the job", url, "sales_fact")
            show("project job", "fresh", fresh)
            repeat = run_job_in_child(env, again)
            check("the job", url, "sales_fact")
            show("project job", "again", repeat)
            for phase, counted in zip(("fresh", "again"), job_counters(url), strict=True):
                print(f"  the job, {phase}, in the ledger: {counted}", flush=True)
        results["project job"] = {"fresh": fresh, "again": repeat}

        strategies = ["upsert"] + ([] if args.no_delete_insert else ["delete-insert"])
        for strategy in strategies:
            work = tmp / f"dlt_{strategy}"
            work.mkdir()
            with scratch_postgres(migrate=False) as url:
                name, figures = f"dlt merge {strategy}", {}
                for phase, file in (("fresh", path), ("again", again)):
                    figures[phase] = peer(
                        args.peers_python, "dlt", phase, url, file, work, strategy=strategy
                    )
                    check(name, url, f"peers.{TABLE}")
                    show(name, phase, figures[phase])
            results[name] = figures

        work = tmp / "sling"
        work.mkdir()
        with scratch_postgres(migrate=False) as url:
            engine = create_engine(url)
            with engine.begin() as conn:
                for statement in sling_table_sql():
                    conn.exec_driver_sql(statement)
            engine.dispose()
            sling = {}
            for phase, file in (("fresh", path), ("again", again)):
                sling[phase] = peer(args.peers_python, "sling", phase, url, file, work)
                check("sling", url, f"public.{TABLE}")
                show("sling incremental", phase, sling[phase])
        results["sling incremental"] = sling

    report(results, args.rows)


def report(results: dict[str, dict[str, dict[str, Any]]], rows: int) -> None:
    """Print each contender's figures, the job's ratio to each peer and who is faster."""
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{rows:,} rows; seconds of the load, peak RSS of the process that ran it")
    for name, phases in results.items():
        line = "  ".join(
            f"{phase} {figures['seconds']:6.2f} s {figures['peak_rss_mb']:6.1f} MB"
            for phase, figures in phases.items()
        )
        print(f"  {name + ':':<25}{line}")
    for phase, figures in results["project job"].items():
        print(f"  the job, {phase}: load step {figures['load_seconds']} s")
    job = results["project job"]
    for name, phases in results.items():
        if name == "project job":
            continue
        for phase in ("fresh", "again"):
            ratio = job[phase]["seconds"] / phases[phase]["seconds"]
            verdict = "faster than" if ratio < 1 else "slower than"
            print(
                f"ratio job/{name}, {phase}: {ratio:.2f}  (the job is {verdict} {name}; "
                "target < 1.00)"
            )


if __name__ == "__main__":
    main()
