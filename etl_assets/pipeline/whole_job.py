"""One job's whole pipeline in one call, for batch runs of small jobs.

The asset graph (assets/sales.py) runs a job as four Dagster steps, which costs about a
second of Dagster bookkeeping per job whatever its size. A batch run (assets/batch.py)
instead calls `run_whole_job` for each of its small jobs: the same steps, in the same
`job_step` bookkeeping of the ledger, with the same functions, one after the other in one
process. Each step's metadata is returned so the batch can record one materialization per
asset and job partition, as the asset graph would.

A transient failure inside a batch never waits in the run (that would hold up the other
jobs): the job goes back to the queue with its backoff (`max_in_run_wait_seconds=0`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from etl_assets.pipeline.metadata import load_metadata, source_metadata
from etl_assets.pipeline.steps import load_lines, read_source
from etl_assets.pipeline.transform import SalesLinesToLoad
from etl_assets.resources.apis import CatalogResource, FxRatesResource
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.resources.staging import StagingResource
from etl_assets.runs.tracking import job_step

StepMetadata = dict[str, dict[str, Any]]  # asset name -> materialization metadata


def run_whole_job(
    job_id: str,
    run_id: str,
    *,
    ledger: LedgerResource,
    staging: StagingResource,
    pipeline: PipelineSettingsResource,
    fx_api: FxRatesResource,
    catalog_api: CatalogResource,
) -> StepMetadata:
    """Validate, enrich, transform and load one job; returns each asset's metadata.

    Failures are recorded in the ledger by `job_step` (requeued with backoff, or failed)
    and raised as `dagster.Failure`, for the caller to note and go on with the next job.
    """
    policy = dataclasses.replace(pipeline.step_policy, max_in_run_wait_seconds=0)
    book = ledger.ledger
    source, _ = read_source(
        book, job_id, run_id, staging, chunk_rows=pipeline.chunk_rows, policy=policy
    )
    fx_calls, catalog_calls = fx_api.calls, catalog_api.calls
    with job_step(book, job_id, run_id, "fx_rates", policy):
        rates = fx_api.rates(source.fx_pairs, pipeline.reporting_currency)
    with job_step(book, job_id, run_id, "catalog_products", policy):
        products = catalog_api.products(source.skus)
    lines = SalesLinesToLoad(
        job_id=job_id,
        source=source,
        fx_rates=rates,
        products=products,
        reporting_currency=pipeline.reporting_currency,
    )
    completed = load_lines(book, job_id, run_id, lines, policy)
    staging.remove_job(job_id)
    return {
        "sales_source_rows": source_metadata(source, completed.source_name),
        "fx_rates": {
            "dagster/row_count": len(rates),
            "api_calls": fx_api.calls - fx_calls,
        },
        "catalog_products": {
            "dagster/row_count": len(products),
            "skus_not_in_catalog": len(source.skus) - len(products),
            "api_calls": catalog_api.calls - catalog_calls,
        },
        "sales_fact": load_metadata(completed),
    }
