"""What a one-pass job would gain: the file read, validated, looked up, transformed and loaded
in a single pass, against the job's asset graph and the floor, on the same file, in one run.

    python benchmarks/bench_one_pass.py [--rows 1000000] [--rounds 2] [--write-ahead 1]

The job's asset graph reads and validates the whole file (`source_rows`) before the load
starts, with PostgreSQL idle meanwhile; at 1,000,000 rows that step alone is 0.3-0.4x the
floor, and the fresh-load target is 1.2x. This measures the shape that would overlap them,
built from the job's own functions (`read_chunks`, `validate_chunk`, `look_up`, `fact_rows`,
`load_job` with its write-ahead), with each enrichment asked only about the keys a chunk
brings that earlier chunks did not. It is an experiment, not a path the platform runs: it
skips quarantine, staging and the Dagster run (the job's figure includes its run, about
0.3 s), so it is the best such a shape could do here.

Each round: a new database, the job (as bench_large_file runs it) and the floor; another new
database, the one pass. Ratios are to the lowest floor.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from page_cache import evict_shared_libraries

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_pass(path: Path, write_ahead: int) -> dict[str, Any]:
    """In a child: submit the file, claim it, and load it in one pass; its figures."""
    from bench_large_file import peak_rss_mb

    import etl_assets.warehouse.load as load
    from etl_assets.config import Settings
    from etl_assets.datasets import get_dataset
    from etl_assets.datasets.base import TransformContext
    from etl_assets.db import engine_for
    from etl_assets.intake.publisher import publish_file, source_archive
    from etl_assets.ledger import Ledger
    from etl_assets.resources.apis import enrichment_clients
    from etl_assets.runs.tracking import StepPolicy, job_step

    load.WRITE_AHEAD = write_ahead
    settings = Settings.from_env()
    ledger = Ledger(engine_for(settings))
    dataset = get_dataset("sales")
    job = publish_file(ledger, source_archive(settings.staging_dir), path, dataset="sales").job
    started = time.perf_counter()
    ledger.claim_due(1)
    run_id = str(uuid.uuid4())
    ledger.begin_run(job.job_id, run_id)
    clients = enrichment_clients(settings)  # as the job's definitions build them
    context = TransformContext(job_id=job.job_id, reporting_currency=settings.reporting_currency)
    rows = OnePassRows(dataset, Path(job.source_uri), settings, clients, context)
    with job_step(ledger, job.job_id, run_id, "sales/one-pass", StepPolicy()) as step:
        done = load.load_job(ledger, step.job, run_id, rows, step.heartbeat)
    return {
        "seconds": time.perf_counter() - started,
        "rows_loaded": done.rows_loaded,
        "status": done.status,
        "peak_rss_mb": peak_rss_mb(),
    }


class OnePassRows:
    """The job's fact rows straight from its file, in the shape `load_job` pulls them."""

    def __init__(
        self,
        dataset: Any,
        path: Path,
        settings: Any,
        clients: dict[str, Any],
        context: Any,
    ) -> None:
        from etl_assets.pipeline.csv_source import CsvLimits, read_header

        self.dataset, self.path, self.clients, self.context = dataset, path, clients, context
        self.job_id = context.job_id
        self.chunk_rows = settings.chunk_rows
        self.limits = CsvLimits.from_settings(settings)
        self.columns = read_header(path, dataset.required_columns, path.name, self.limits)
        with path.open("rb") as handle:  # the checkpoint wants a chunk count up front
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        self.rows_valid = lines - 1
        self.chunk_count = -(-self.rows_valid // self.chunk_rows)
        self.rows_quarantined_at_validation = 0

    def chunks(self, start: int = 0, *, prefetched: bool = True) -> Any:
        """Read, validate, look up the new keys, transform: chunk after chunk."""
        import pandas as pd

        from etl_assets.pipeline.csv_source import read_chunks
        from etl_assets.pipeline.enrich import look_up
        from etl_assets.pipeline.source import distinct_rows
        from etl_assets.pipeline.transform import TransformedChunk, fact_rows
        from etl_assets.pipeline.validation import validate_chunk

        seen: dict[str, set[Any]] = {e.name: set() for e in self.dataset.enrichments}
        lookups: dict[str, pd.DataFrame] = {}
        index = 0
        blocks = read_chunks(self.path, self.columns, self.chunk_rows * 2, limits=self.limits)
        for raw in blocks:
            valid = validate_chunk(raw.frame, self.dataset.columns).valid
            for enrichment in self.dataset.enrichments:
                new = set(distinct_rows(valid, enrichment.keys)) - seen[enrichment.name]
                if new:
                    client = self.clients[enrichment.resource]
                    found = look_up(enrichment, client, frozenset(new), self.context)
                    seen[enrichment.name] |= new
                    before = lookups.get(enrichment.name)
                    lookups[enrichment.name] = (
                        found if before is None else pd.concat([before, found], ignore_index=True)
                    )
            for first in range(0, len(valid), self.chunk_rows):
                rows = valid.iloc[first : first + self.chunk_rows].reset_index(drop=True)
                lines, rejected = fact_rows(self.dataset, rows, lookups, self.context)
                yield TransformedChunk(index, len(rows), lines, rejected)
                index += 1


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-ahead", type=int, default=1, help="chunks written ahead")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_pass(args.child, args.write_ahead)))
        return
    eviction = evict_shared_libraries()  # before this process maps pandas and Arrow

    from bench_large_file import fact_rows_floor, job_env, run_job_in_child
    from common import machine, sales_csv, scratch_postgres

    from etl_assets.config import Settings
    from etl_assets.reference_api import ReferenceApiServer

    print(f"machine: {machine()}")
    print(eviction)
    path = sales_csv(args.rows)
    chunk_rows = Settings().chunk_rows
    floors, jobs, passes = [], [], []
    for number in range(1, max(args.rounds, 1) + 1):
        with ExitStack() as stack:
            api = stack.enter_context(ReferenceApiServer())
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = stack.enter_context(scratch_postgres())
            job = run_job_in_child(job_env(url, scratch / "job", api, chunk_rows), path)
            floor = fact_rows_floor(url, scratch)
            env = job_env(stack.enter_context(scratch_postgres()), scratch / "one", api, chunk_rows)
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(path), "--write-ahead",
                 str(args.write_ahead)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if child.returncode != 0:
                raise SystemExit(f"the one pass failed:\n{child.stderr[-4000:]}")
            single = json.loads(child.stdout.splitlines()[-1])
        floors.append(floor)
        jobs.append(float(job["seconds"]))
        passes.append(float(single["seconds"]))
        print(
            f"round {number}: floor {floor:.2f} s; the job {job['seconds']:.2f} s (peak "
            f"{job['peak_rss_mb']} MB); one pass {single['seconds']:.2f} s (loaded "
            f"{single['rows_loaded']:,}, {single['status']}, peak {single['peak_rss_mb']} MB)",
            flush=True,
        )
    floor = min(floors)
    print(f"floor: {floor:.2f} s (lowest of {len(floors)} rounds)")
    print(f"the job (asset graph): {min(jobs):.2f} s, {min(jobs) / floor:.2f}x the floor")
    print(
        f"one pass (write-ahead {args.write_ahead}): {min(passes):.2f} s, "
        f"{min(passes) / floor:.2f}x the floor; {min(passes) / min(jobs):.2f}x the job"
    )


if __name__ == "__main__":
    main()
