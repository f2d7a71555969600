"""One job's whole pipeline in one call, for batch runs of small jobs.

The asset graph (assets/factory.py) runs a job as one Dagster step per asset, which costs
about a second of Dagster bookkeeping per job whatever its size. A batch run
(assets/batch.py) instead calls `run_whole_job` for each of its small jobs: the same steps,
in the same `job_step` bookkeeping of the ledger, with the same functions, one after the
other in one process. Each step's metadata is returned so the batch can record one
materialization per asset and job partition, as the asset graph would.

A transient failure inside a batch never waits in the run (that would hold up the other
jobs): the job goes back to the queue with its backoff (`max_in_run_wait_seconds=0`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import dagster as dg

from etl_assets.datasets import get_dataset
from etl_assets.datasets.base import TransformContext
from etl_assets.pipeline.csv_source import CsvLimits
from etl_assets.pipeline.metadata import load_metadata, source_metadata
from etl_assets.pipeline.steps import SOURCE_ROWS, enrich_step, load_rows, read_source
from etl_assets.pipeline.transform import RowsToLoad
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.resources.staging import StagingResource

StepMetadata = dict[dg.AssetKey, dict[str, Any]]  # asset -> materialization metadata


def run_whole_job(
    job_id: str,
    dataset_name: str,
    run_id: str,
    *,
    ledger: LedgerResource,
    staging: StagingResource,
    pipeline: PipelineSettingsResource,
    clients: Mapping[str, Any],
) -> StepMetadata:
    """Validate, enrich, transform and load one job; returns each asset's metadata.

    `clients` are the API resources by resource key. Failures are recorded in the ledger by
    `job_step` (requeued with backoff, or failed) and raised as `dagster.Failure`, for the
    caller to note and go on with the next job.
    """
    dataset = get_dataset(dataset_name)
    policy = dataclasses.replace(pipeline.step_policy, max_in_run_wait_seconds=0)
    book = ledger.ledger
    source, job = read_source(
        book,
        dataset,
        job_id,
        run_id,
        staging,
        chunk_rows=pipeline.chunk_rows,
        limits=CsvLimits.from_pipeline(pipeline),
        policy=policy,
    )
    context = TransformContext(job_id=job_id, reporting_currency=pipeline.reporting_currency)
    metadata: StepMetadata = {
        dg.AssetKey([dataset.name, SOURCE_ROWS]): source_metadata(source, job.source_name)
    }
    lookups = {}
    for enrichment in dataset.enrichments:
        client = clients[enrichment.resource]
        lookups[enrichment.name], metadata[dg.AssetKey([dataset.name, enrichment.name])] = (
            enrich_step(book, dataset, enrichment, client, source, context, run_id, policy)
        )
    rows = RowsToLoad(dataset=dataset, source=source, lookups=lookups, context=context)
    completed = load_rows(book, run_id, rows, policy)
    staging.remove_job(job_id)
    metadata[dg.AssetKey([dataset.name, dataset.fact_table.name])] = load_metadata(completed)
    return metadata
