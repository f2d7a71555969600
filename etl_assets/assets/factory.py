"""The factory: everything Dagster-facing of a dataset, built from its declaration.

For each dataset (datasets/registry.py) it builds, under the key prefix and group of the
dataset's name:

    <dataset>/source_rows ──► <dataset>/<enrichment>  (one per enrichment, in its API's pool)
             │                          │
             └──────────────────────────┴──► <dataset>/<fact table>  (warehouse IO manager)

every asset partitioned by the dataset's jobs (one dynamic partition per job); its asset job
`<dataset>_job`, which materializes one job partition per run; and its fact table's checks.
Each asset does its work inside `job_step` (runs/tracking.py), which keeps the ledger true
whatever happens; the work itself is the plain functions of `etl_assets.pipeline.steps`.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd

from etl_assets.assets.checks import build_fact_checks
from etl_assets.assets.partitions import partitions_for
from etl_assets.config import Settings
from etl_assets.datasets.base import Dataset, Enrichment, TransformContext
from etl_assets.pipeline.csv_source import CsvLimits
from etl_assets.pipeline.metadata import source_metadata
from etl_assets.pipeline.source import SourceRows
from etl_assets.pipeline.steps import SOURCE_ROWS, enrich_step, read_source, step_name
from etl_assets.pipeline.transform import RowsToLoad
from etl_assets.runs.tracking import job_step

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

STAGING = "staging_io_manager"
WAREHOUSE = "warehouse_io_manager"
STEP_RESOURCES = {"ledger", "pipeline"}


@dataclass(frozen=True)
class DatasetDefinitions:
    """A dataset's Dagster objects."""

    dataset: Dataset
    assets: list[dg.AssetsDefinition]
    checks: dg.AssetChecksDefinition
    job: "UnresolvedAssetJobDefinition"

    @property
    def fact_key(self) -> dg.AssetKey:
        """The key of the asset that is the dataset's fact table."""
        return fact_key(self.dataset)


def fact_key(dataset: Dataset) -> dg.AssetKey:
    """The asset key of a dataset's fact table, e.g. sales/sales_fact."""
    return dg.AssetKey([dataset.name, dataset.fact_table.name])


def asset_key(dataset: Dataset, name: str) -> dg.AssetKey:
    """The key of one of the dataset's assets."""
    return dg.AssetKey([dataset.name, name])


def build_dataset(dataset: Dataset, settings: Settings) -> DatasetDefinitions:
    """The assets, asset job and checks of one dataset."""
    source = _source_asset(dataset)
    lookups = [_enrichment_asset(dataset, enrichment) for enrichment in dataset.enrichments]
    fact = _fact_asset(dataset)
    assets = [source, *lookups, fact]
    return DatasetDefinitions(
        dataset=dataset,
        assets=assets,
        checks=build_fact_checks(dataset, fact_key(dataset)),
        job=_asset_job(dataset, assets, settings),
    )


def _source_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.asset(
        name=SOURCE_ROWS,
        key_prefix=[dataset.name],
        group_name=dataset.name,
        partitions_def=partitions_for(dataset),
        io_manager_key=STAGING,
        kinds={"csv", "pandas"},
        required_resource_keys={*STEP_RESOURCES, "staging"},
        description=(
            f"Valid rows of each {dataset.name} CSV job, staged in chunks; invalid rows are "
            "quarantined with their line and reason."
        ),
    )
    def source_rows(context: dg.AssetExecutionContext) -> dg.Output[SourceRows]:
        """Read and validate the job's file (one partition per job)."""
        resources = context.resources
        source, job = read_source(
            resources.ledger.ledger,
            dataset,
            context.partition_key,
            context.run.run_id,
            resources.staging,
            chunk_rows=resources.pipeline.chunk_rows,
            limits=CsvLimits.from_pipeline(resources.pipeline),
            policy=resources.pipeline.step_policy,
        )
        return dg.Output(source, metadata=source_metadata(source, job.source_name))

    return source_rows


def _enrichment_asset(dataset: Dataset, enrichment: Enrichment) -> dg.AssetsDefinition:
    @dg.asset(
        name=enrichment.name,
        key_prefix=[dataset.name],
        group_name=dataset.name,
        partitions_def=partitions_for(dataset),
        io_manager_key=STAGING,
        kinds={"api"},
        # dagster.yaml caps how many steps call one API at once
        pool=enrichment.concurrency_pool,
        ins={SOURCE_ROWS: dg.AssetIn(key=asset_key(dataset, SOURCE_ROWS))},
        required_resource_keys={*STEP_RESOURCES, enrichment.resource},
        description=enrichment.description,
    )
    def lookup(context: dg.AssetExecutionContext, **inputs: Any) -> dg.Output[pd.DataFrame]:
        """Ask the enrichment's API about the job's distinct keys."""
        resources = context.resources
        found, metadata = enrich_step(
            resources.ledger.ledger,
            dataset,
            enrichment,
            getattr(resources, enrichment.resource),
            inputs[SOURCE_ROWS],
            _context(context),
            context.run.run_id,
            resources.pipeline.step_policy,
        )
        return dg.Output(found, metadata=metadata)

    return lookup


def _fact_asset(dataset: Dataset) -> dg.AssetsDefinition:
    names = [SOURCE_ROWS, *(e.name for e in dataset.enrichments)]

    @dg.asset(
        name=dataset.fact_table.name,
        key_prefix=[dataset.name],
        group_name=dataset.name,
        partitions_def=partitions_for(dataset),
        io_manager_key=WAREHOUSE,
        kinds={"pandas", "sql"},
        ins={name: dg.AssetIn(key=asset_key(dataset, name)) for name in names},
        required_resource_keys=STEP_RESOURCES,
        description=(
            f"The {dataset.name} rows in the warehouse table {dataset.fact_table.name}, "
            "with job_id lineage; loading them completes the job."
        ),
    )
    def fact(context: dg.AssetExecutionContext, **inputs: Any) -> RowsToLoad:
        """The job's fact rows, transformed chunk by chunk as the warehouse IO manager loads
        them; the IO manager also marks the job completed."""
        resources = context.resources
        step = step_name(dataset, dataset.fact_table.name)
        job_id = context.partition_key
        policy = resources.pipeline.step_policy
        with job_step(resources.ledger.ledger, job_id, context.run.run_id, step, policy):
            return RowsToLoad(
                dataset=dataset,
                source=inputs[SOURCE_ROWS],
                lookups={e.name: inputs[e.name] for e in dataset.enrichments},
                context=_context(context),
            )

    return fact


def _context(context: dg.AssetExecutionContext) -> TransformContext:
    return TransformContext(
        job_id=context.partition_key,
        reporting_currency=context.resources.pipeline.reporting_currency,
    )


def _asset_job(
    dataset: Dataset, assets: list[dg.AssetsDefinition], settings: Settings
) -> "UnresolvedAssetJobDefinition":
    """The dataset's asset job: one run materializes every asset of one job partition."""
    return dg.define_asset_job(
        name=dataset.job_name,
        # Without the warehouse checks: they scan the whole table, so downstream_job runs
        # them once per refresh instead of once per job.
        selection=dg.AssetSelection.assets(*assets).without_checks(),
        # One process per step would cost seconds per job: run every step in the run's process.
        executor_def=dg.in_process_executor,
        # Steps retry their own failures through the ledger (runs.tracking.job_step, with the
        # configured multiplier, cap and Retry-After). This policy catches what fails outside
        # them, e.g. loading an input; both count against the same per-step retry budget.
        op_retry_policy=dg.RetryPolicy(
            max_retries=max(settings.retry_max_attempts - 1, 0),
            delay=settings.backoff_base_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        tags={"etl/dataset": dataset.name},
        description=(
            f"Validate, enrich, transform and load one {dataset.name} CSV job "
            "(one partition per job)."
        ),
    )
