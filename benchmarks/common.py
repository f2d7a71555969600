"""Shared set-up for the benchmarks: a throw-away PostgreSQL database, data files, env."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.db import create_engine, temporary_postgres_database

POSTGRES_ADMIN_URL = os.environ.get(
    "ETL_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parents[1]
BROKER = os.environ.get("ETL_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
DATA = Path(__file__).parent / ".data"  # generated inputs, kept between runs (gitignored)


@contextmanager
def scratch_postgres(*, migrate: bool = True) -> Iterator[str]:
    """A new PostgreSQL database (with our schema unless `migrate` is False); dropped
    afterwards. Yields its URL."""
    from etl_assets import migrations

    with temporary_postgres_database(POSTGRES_ADMIN_URL, "etl_bench") as url:
        if migrate:
            engine = create_engine(url)
            migrations.upgrade(engine)
            engine.dispose()
        yield url


def sales_csv(rows: int, seed: int = 42, prefix: str = "BENCH") -> Path:
    """A generated sales CSV of `rows` rows, written once and reused."""
    path = DATA / f"sales_{prefix}_{rows}_{seed}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        step = 1_000_000
        for start in range(0, rows, step):
            frame = sales_frame(
                min(step, rows - start), seed=seed + start, order_prefix=f"{prefix}{start // step}"
            )
            if start == 0:
                write_sales_csv(path, frame)
            else:
                frame.to_csv(path, mode="a", header=False, index=False)
    return path


def same_rows_again(path: Path) -> Path:
    """The file's rows, byte for byte, under a header that quotes its first name, written
    once beside it and reused.

    The ledger takes a file whose content it has seen as the same job (`content_sha256`), so
    re-sending the very file would load nothing; a quoted header name parses to the same
    columns in any CSV reader (the job's, dlt's, sling's) and gives the same rows a new
    checksum: a re-sent export.
    """
    again = path.with_name(f"{path.stem}_again.csv")
    if not again.exists() or again.stat().st_size != path.stat().st_size + 2:
        with path.open("rb") as source, again.open("wb") as target:
            header = source.readline()
            name, rest = header.split(b",", 1)
            target.write(b'"' + name + b'",' + rest)
            while block := source.read(16 << 20):
                target.write(block)
    return again


def machine() -> str:
    """One line saying where the figures came from."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    postgres = subprocess.run(
        ["psql", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {postgres}"


def process_start_seconds(runs: int = 3) -> float:
    """The least seconds, of `runs`, a new Python process takes to import the platform's
    definitions: what every `etl` command and every run process of the default launcher
    pays before its work. Small-job figures are printed against it too, since they are
    seconds on whatever machine they ran on (two machines of one kind differed by 2.5x)."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import etl_assets.definitions"],
            check=True,
            cwd=REPO,
        )
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def use_celery_workers(stack: ExitStack, env: dict[str, str]) -> None:
    """Set `env` up for Celery run workers: Dagster's storage on a scratch PostgreSQL database
    (workers in other processes share it, as in production) and a queue private to this run."""
    dagster_pg = stack.enter_context(scratch_postgres(migrate=False))
    env["DAGSTER_PG_URL"] = dagster_pg.replace("postgresql://", "postgresql+psycopg2://")
    env["CELERY_BROKER_URL"] = BROKER
    env["CELERY_QUEUE"] = f"etl-bench-{uuid.uuid4().hex[:8]}"


def prepare_platform(home: Path, env: dict[str, str]) -> tuple[Any, Any]:
    """Adopt `env`, write the Dagster home `home` from dagster.yaml with its pools, migrate the
    ledger; returns the settings and the ledger."""
    from etl_assets import migrations
    from etl_assets.config import Settings
    from etl_assets.db import engine_for
    from etl_assets.ledger import Ledger
    from etl_assets.runtime.instance import initialize_pools, write_dagster_home

    os.environ.update(env)
    settings = Settings.from_env()
    write_dagster_home(home, REPO / "dagster.yaml", settings)
    initialize_pools(home)
    migrations.upgrade(engine_for(settings))
    return settings, Ledger(engine_for(settings))
