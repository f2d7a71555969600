"""The first and last step of a job, as plain functions: the asset graph (assets/sales.py and
the warehouse IO manager) and batch runs (pipeline/whole_job.py) both call them, so a job
reads, loads and logs the same way however it is run."""

from __future__ import annotations

import logging

from etl_assets.ledger import Job, Ledger
from etl_assets.pipeline.source import SourceRows, stage_source_rows
from etl_assets.pipeline.transform import SalesLinesToLoad
from etl_assets.resources.staging import StagingResource
from etl_assets.runs.tracking import StepPolicy, job_step
from etl_assets.warehouse.load import load_job
from etl_assets.warehouse.parsed import dispatch_job_events

# Platform loggers, not context.log: one format, LOG_LEVEL, the job id on every line; the
# instance's managed_python_loggers (dagster.yaml) still shows these lines in the run's log.
logger = logging.getLogger(__name__)


def read_source(
    ledger: Ledger,
    job_id: str,
    run_id: str,
    staging: StagingResource,
    *,
    chunk_rows: int,
    policy: StepPolicy,
) -> tuple[SourceRows, Job]:
    """The `sales_source_rows` step: validate and stage the job's file; returns its rows and
    the job as the step found it."""
    with job_step(ledger, job_id, run_id, "sales_source_rows", policy) as step:
        job = step.job
        logger.info(
            "reading started: job=%s, file=%s, bytes=%d", job_id, job.source_name, job.size_bytes
        )
        source = stage_source_rows(
            ledger,
            job,
            run_id,
            staging.chunk_writer(job_id, "sales_source_rows"),
            chunk_rows=chunk_rows,
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


def load_lines(
    ledger: Ledger, job_id: str, run_id: str, lines: SalesLinesToLoad, policy: StepPolicy
) -> Job:
    """The warehouse load: load every chunk not yet committed and complete the job, then run
    the handlers of its `transaction.parsed` event; returns the completed job."""
    with job_step(ledger, job_id, run_id, "warehouse load", policy) as step:
        logger.info("upload started: job=%s, rows=%d", job_id, lines.source.chunks.row_count)
        completed = load_job(ledger, step.job, run_id, lines, step.heartbeat)
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
