"""The code location: assembles Definitions from the dataset declarations, the downstream
tables, the sensors and the resources."""

from __future__ import annotations

import dagster as dg

from etl_assets.assets.batch import build_batch_job
from etl_assets.assets.factory import DatasetDefinitions, build_dataset
from etl_assets.assets.io_manager import WarehouseIOManager
from etl_assets.config import Settings, secret_source
from etl_assets.datasets import all_datasets
from etl_assets.datasets.registry import load_modules
from etl_assets.downstream.assets import (
    DOWNSTREAM_CHECKS,
    build_downstream_assets,
    build_downstream_job,
)
from etl_assets.logs import configure_logging
from etl_assets.resources.apis import enrichment_clients
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.resources.staging import JobStagingIOManager, StagingResource
from etl_assets.runs.retries import Backoff
from etl_assets.runtime.dispatching import RunPlan
from etl_assets.sensors.alerts import build_alerts_sensor
from etl_assets.sensors.dispatch import build_dispatch_sensor
from etl_assets.sensors.downstream import build_downstream_sensor
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
        csv_max_columns=settings.csv_max_columns,
        csv_max_cell_chars=settings.csv_max_cell_chars,
        csv_max_field_chars=settings.csv_max_field_chars,
        csv_max_line_chars=settings.csv_max_line_chars,
    )
    return {
        "ledger": ledger,
        "staging": StagingResource(base_dir=settings.staging_dir),
        "pipeline": pipeline,
        **enrichment_clients(settings, token=secret_source),
        "staging_io_manager": JobStagingIOManager(base_dir=settings.staging_dir),
        "warehouse_io_manager": WarehouseIOManager(ledger=ledger, pipeline=pipeline),
    }


def build_datasets(settings: Settings) -> list[DatasetDefinitions]:
    """The Dagster objects of every registered dataset (those of DATASET_MODULES too)."""
    load_modules(settings.dataset_module_names)
    return [build_dataset(dataset, settings) for dataset in all_datasets()]


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location for `settings`."""
    datasets = build_datasets(settings)
    dataset_jobs = [d.job for d in datasets]
    batch_job = build_batch_job([d.dataset for d in datasets])
    downstream_assets = build_downstream_assets()
    downstream_job = build_downstream_job(downstream_assets, datasets)
    backoff = Backoff.from_settings(settings)
    return dg.Definitions(
        assets=[*(asset for d in datasets for asset in d.assets), *downstream_assets],
        asset_checks=[*(d.checks for d in datasets), *DOWNSTREAM_CHECKS],
        jobs=[*dataset_jobs, batch_job, downstream_job],
        sensors=[
            build_downstream_sensor(
                downstream_job, datasets, DOWNSTREAM_CHECKS, settings.downstream_interval_seconds
            ),
            build_inbox_sensor(
                settings.inbox_dir,
                settings.inbox_settle_seconds,
                settings.inbox_interval_seconds,
                [*dataset_jobs, batch_job],
                RunPlan.from_settings(settings),
            ),
            build_dispatch_sensor(
                dataset_jobs,
                batch_job,
                settings.batch_size,
                settings.dispatch_interval_seconds,
                settings.jobs_per_run,
                settings.small_job_bytes,
            ),
            build_run_failure_sensor(dataset_jobs, batch_job, backoff),
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
