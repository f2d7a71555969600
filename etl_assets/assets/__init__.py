"""Asset graphs, one per dataset, and the asset job that materializes a job partition."""

import dagster as dg

from etl_assets.assets.sales import SALES_ASSETS

etl_job = dg.define_asset_job(
    name="etl_job",
    selection=dg.AssetSelection.assets(*SALES_ASSETS),
    # One process per step would cost seconds per job: run every step in the run's process.
    executor_def=dg.in_process_executor,
    description="Validate, enrich, transform and load one CSV job (one partition per job).",
)

__all__ = ["SALES_ASSETS", "etl_job"]
