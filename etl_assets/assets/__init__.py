"""Asset graphs, one per dataset, and the asset job that materializes a job partition."""

from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.sales import SALES_ASSETS
from etl_assets.config import Settings

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ETL_JOB = "etl_job"


def build_etl_job(settings: Settings) -> "UnresolvedAssetJobDefinition":
    """The asset job: one run materializes every asset of one job partition."""
    return dg.define_asset_job(
        name=ETL_JOB,
        # Without the warehouse checks: they scan the whole warehouse, so downstream_job runs
        # them once per refresh instead of once per job.
        selection=dg.AssetSelection.assets(*SALES_ASSETS).without_checks(),
        # One process per step would cost seconds per job: run every step in the run's process.
        executor_def=dg.in_process_executor,
        # Steps retry their own failures through the ledger (tracking.job_step, with the
        # configured multiplier, cap and Retry-After). This policy catches what fails outside
        # them, e.g. loading an input; both count against the same per-step retry budget.
        op_retry_policy=dg.RetryPolicy(
            max_retries=max(settings.retry_max_attempts - 1, 0),
            delay=settings.backoff_base_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        description="Validate, enrich, transform and load one CSV job (one partition per job).",
    )


__all__ = ["ETL_JOB", "SALES_ASSETS", "build_etl_job"]
