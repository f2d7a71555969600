"""Shared set-up for the benchmarks: a throw-away PostgreSQL database, data files, env."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.db import create_engine, temporary_postgres_database

POSTGRES_ADMIN_URL = os.environ.get(
    "ETL_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"
)
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
