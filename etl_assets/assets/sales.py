"""The per-job asset graph of the sales dataset: CSV rows -> FX rates, products -> warehouse.

Each asset is partitioned by job (one dynamic partition per job id) and does its work inside
`job_step`, which keeps the ledger true whatever happens.
"""

import dagster as dg
import pandas as pd

from etl_assets.partitions import job_partitions
from etl_assets.pipeline.metadata import source_metadata
from etl_assets.pipeline.source import SourceRows
from etl_assets.pipeline.steps import read_source
from etl_assets.pipeline.transform import SalesLinesToLoad
from etl_assets.resources.apis import CatalogResource, FxRatesResource
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.resources.staging import StagingResource
from etl_assets.runs.tracking import job_step

STAGING = "staging_io_manager"


@dg.asset(
    partitions_def=job_partitions,
    group_name="ingest",
    io_manager_key=STAGING,
    kinds={"csv", "pandas"},
)
def sales_source_rows(
    context: dg.AssetExecutionContext,
    ledger: LedgerResource,
    staging: StagingResource,
    pipeline: PipelineSettingsResource,
) -> dg.Output[SourceRows]:
    """Valid rows of the job's sales CSV, staged in chunks; invalid rows go to quarantine."""
    job_id = context.partition_key
    source, job = read_source(
        ledger.ledger,
        job_id,
        context.run.run_id,
        staging,
        chunk_rows=pipeline.chunk_rows,
        policy=pipeline.step_policy,
    )
    return dg.Output(source, metadata=source_metadata(source, job.source_name))


@dg.asset(
    partitions_def=job_partitions,
    group_name="ingest",
    io_manager_key=STAGING,
    kinds={"api"},
    pool="fx_api",  # dagster.yaml caps how many steps call the FX API at once
)
def fx_rates(
    context: dg.AssetExecutionContext,
    sales_source_rows: SourceRows,
    ledger: LedgerResource,
    fx_api: FxRatesResource,
    pipeline: PipelineSettingsResource,
) -> dg.Output[pd.DataFrame]:
    """FX rate of each (order date, currency) in the job: one FX API call per distinct date."""
    job_id = context.partition_key
    with job_step(ledger.ledger, job_id, context.run.run_id, "fx_rates", pipeline.step_policy):
        rates = fx_api.rates(sales_source_rows.fx_pairs, pipeline.reporting_currency)
    return dg.Output(
        rates,
        metadata={"dagster/row_count": len(rates), "api_calls": fx_api.calls},
    )


@dg.asset(
    partitions_def=job_partitions,
    group_name="ingest",
    io_manager_key=STAGING,
    kinds={"api"},
    pool="catalog_api",  # dagster.yaml caps how many steps call the catalog API at once
)
def catalog_products(
    context: dg.AssetExecutionContext,
    sales_source_rows: SourceRows,
    ledger: LedgerResource,
    catalog_api: CatalogResource,
    pipeline: PipelineSettingsResource,
) -> dg.Output[pd.DataFrame]:
    """Name and category of each SKU in the job, from the catalog API in batches."""
    job_id = context.partition_key
    policy = pipeline.step_policy
    with job_step(ledger.ledger, job_id, context.run.run_id, "catalog_products", policy):
        products = catalog_api.products(sales_source_rows.skus)
    missing = len(sales_source_rows.skus) - len(products)
    return dg.Output(
        products,
        metadata={
            "dagster/row_count": len(products),
            "skus_not_in_catalog": missing,
            "api_calls": catalog_api.calls,
        },
    )


@dg.asset(
    partitions_def=job_partitions,
    group_name="warehouse",
    io_manager_key="warehouse_io_manager",
    kinds={"pandas", "sql"},
)
def sales_fact(
    context: dg.AssetExecutionContext,
    sales_source_rows: SourceRows,
    fx_rates: pd.DataFrame,
    catalog_products: pd.DataFrame,
    ledger: LedgerResource,
    pipeline: PipelineSettingsResource,
) -> SalesLinesToLoad:
    """The job's order lines in the warehouse, with product names and reporting-currency amounts.

    Rows are merged and transformed chunk by chunk as the warehouse IO manager loads them;
    the IO manager also marks the job completed.
    """
    job_id = context.partition_key
    with job_step(ledger.ledger, job_id, context.run.run_id, "sales_fact", pipeline.step_policy):
        return SalesLinesToLoad(
            job_id=job_id,
            source=sales_source_rows,
            fx_rates=fx_rates,
            products=catalog_products,
            reporting_currency=pipeline.reporting_currency,
        )


SALES_ASSETS = [sales_source_rows, fx_rates, catalog_products, sales_fact]
