"""The code location: assembles Definitions from the assets, job, sensors and resources."""

from __future__ import annotations

import dagster as dg

from etl_assets.assets import SALES_ASSETS, build_etl_job
from etl_assets.assets.batch import etl_batch_job
from etl_assets.assets.checks import WAREHOUSE_CHECKS, sales_fact_checks
from etl_assets.assets.io_manager import WarehouseIOManager
from etl_assets.config import Settings, secret_source
from etl_assets.downstream.assets import (
    DOWNSTREAM_ASSETS,
    build_downstream_job,
    build_downstream_sensor,
)
from etl_assets.logs import configure_logging
from etl_assets.resources.apis import api_clients
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.resources.staging import JobStagingIOManager, StagingResource
from etl_assets.runs.retries import Backoff
from etl_assets.sensors.alerts import build_alerts_sensor
from etl_assets.sensors.dispatch import build_dispatch_sensor
from etl_assets.sensors.inbox import build_inbox_sensor
from etl_assets.sensors.reaper import build_reaper_sensor
from etl_assets.sensors.run_failure import build_run_failure_sensor


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource the assets and sensors use, configured from `settings`."""
    ledger = LedgerResource(
        database_url=secret_source("DATABASE_URL", settings.database_url),
        retry_max_attempts=settings.retry_max_attempts,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle_seconds=settings.db_pool_recycle_seconds,
    )
    pipeline = PipelineSettingsResource(
        chunk_rows=settings.chunk_rows,
        reporting_currency=settings.reporting_currency,
        heartbeat_seconds=settings.heartbeat_seconds,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_multiplier=settings.backoff_multiplier,
        backoff_max_seconds=settings.backoff_max_seconds,
        backoff_jitter=settings.backoff_jitter,
        max_in_run_wait_seconds=settings.stuck_after_seconds,
    )
    fx_api, catalog_api = api_clients(settings, token=secret_source)
    return {
        "ledger": ledger,
        "staging": StagingResource(base_dir=settings.staging_dir),
        "pipeline": pipeline,
        "fx_api": fx_api,
        "catalog_api": catalog_api,
        "staging_io_manager": JobStagingIOManager(base_dir=settings.staging_dir),
        "warehouse_io_manager": WarehouseIOManager(ledger=ledger, pipeline=pipeline),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location for `settings`."""
    etl_job = build_etl_job(settings)
    downstream_job = build_downstream_job(dg.AssetSelection.checks(sales_fact_checks))
    backoff = Backoff.from_settings(settings)
    return dg.Definitions(
        assets=[*SALES_ASSETS, *DOWNSTREAM_ASSETS],
        asset_checks=WAREHOUSE_CHECKS,
        jobs=[etl_job, etl_batch_job, downstream_job],
        sensors=[
            build_downstream_sensor(downstream_job, settings.downstream_interval_seconds),
            build_inbox_sensor(
                settings.inbox_dir, settings.inbox_settle_seconds, settings.inbox_interval_seconds
            ),
            build_dispatch_sensor(
                etl_job,
                etl_batch_job,
                settings.batch_size,
                settings.dispatch_interval_seconds,
                settings.jobs_per_run,
                settings.small_job_bytes,
            ),
            build_run_failure_sensor(etl_job, etl_batch_job, backoff),
            build_reaper_sensor(
                settings.stuck_after_seconds, settings.reaper_interval_seconds, backoff
            ),
            build_alerts_sensor(settings),
        ],
        resources=build_resources(settings),
    )


_settings = Settings.from_env()
configure_logging(_settings.log_level)  # in the code server and in every run process
defs = build_definitions(_settings)
