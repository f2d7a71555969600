"""The steps of a job, as plain functions: the asset graph (assets/factory.py and the
warehouse IO manager) and batch runs (pipeline/whole_job.py) both call them, so a job reads,
enriches, loads and logs the same way however it is run."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from etl_assets.datasets.base import Dataset, Enrichment, TransformContext
from etl_assets.ledger import Job, Ledger
from etl_assets.pipeline.csv_source import CsvLimits
from etl_assets.pipeline.enrich import look_up
from etl_assets.pipeline.source import SourceRows, stage_source_rows
from etl_assets.pipeline.transform import RowsToLoad
from etl_assets.resources.staging import StagingResource
from etl_assets.runs.tracking import StepPolicy, job_step
from etl_assets.warehouse.load import load_job
from etl_assets.warehouse.parsed import dispatch_job_events

# Platform loggers, not context.log: one format, LOG_LEVEL, the job id on every line; the
# instance's managed_python_loggers (dagster.yaml) still shows these lines in the run's log.
logger = logging.getLogger(__name__)

SOURCE_ROWS = "source_rows"  # the asset (and step) that reads and validates the file
LOAD_STEP = "warehouse load"  # the warehouse IO manager's step


def step_name(dataset: Dataset, name: str) -> str:
    """How a step is named in the ledger's messages: the asset key, e.g. sales/fx_rates."""
    return f"{dataset.name}/{name}"


def read_source(
    ledger: Ledger,
    dataset: Dataset,
    job_id: str,
    run_id: str,
    staging: StagingResource,
    *,
    chunk_rows: int,
    limits: CsvLimits,
    policy: StepPolicy,
) -> tuple[SourceRows, Job]:
    """The `source_rows` step: validate and stage the job's file within `limits` (the run's
    settings, from the pipeline resource); returns its rows and the job as the step found
    it."""
    with job_step(ledger, job_id, run_id, step_name(dataset, SOURCE_ROWS), policy) as step:
        job = step.job
        logger.info(
            "reading started: job=%s, file=%s, bytes=%d", job_id, job.source_name, job.size_bytes
        )
        source = stage_source_rows(
            ledger,
            dataset,
            job,
            run_id,
            staging.chunk_writer(job_id, SOURCE_ROWS),
            chunk_rows=chunk_rows,
            limits=limits,
            heartbeat=step.heartbeat,
        )
    logger.info(
        "validated: job=%s, rows=%d, valid %d, quarantined %d",
        job_id,
        source.rows_total,
        source.chunks.row_count,
        source.rows_quarantined,
    )
    return source, job


def enrich_step(
    ledger: Ledger,
    dataset: Dataset,
    enrichment: Enrichment,
    client: Any,
    source: SourceRows,
    context: TransformContext,
    run_id: str,
    policy: StepPolicy,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One enrichment's step: ask its API about the job's distinct keys; returns the answers
    and the materialization's metadata."""
    keys = source.lookup_keys[enrichment.name]
    calls_before = getattr(client, "calls", 0)
    step = step_name(dataset, enrichment.name)
    with job_step(ledger, context.job_id, run_id, step, policy):
        found = look_up(enrichment, client, keys, context)
    metadata = {
        "dagster/row_count": len(found),
        "keys_looked_up": len(keys),
        "keys_unknown": len(keys) - len(found),
        "api_calls": getattr(client, "calls", 0) - calls_before,
    }
    return found, metadata


def load_rows(ledger: Ledger, run_id: str, rows: RowsToLoad, policy: StepPolicy) -> Job:
    """The warehouse load: load every chunk not yet committed and complete the job, then run
    the handlers of its `transaction.parsed` event; returns the completed job."""
    job_id = rows.job_id
    step = step_name(rows.dataset, LOAD_STEP)
    with job_step(ledger, job_id, run_id, step, policy) as body:
        logger.info("upload started: job=%s, rows=%d", job_id, rows.source.chunks.row_count)
        completed = load_job(ledger, body.job, run_id, rows, body.heartbeat)
    # The load committed with its transaction.parsed event: run the event's handlers now,
    # outside the step, so no handler can fail or slow down the load.
    dispatch_job_events(ledger.engine, job_id)
    logger.info(
        "loaded: job=%s, created %d, quarantined %d, duplicates %d",
        job_id,
        completed.rows_loaded,
        completed.rows_quarantined,
        completed.rows_duplicate,
    )
    return completed
