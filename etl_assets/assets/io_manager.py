"""The IO manager that writes the warehouse and completes the job in the ledger: a thin
adapter from Dagster's output handling to the generic load (pipeline.steps.load_rows)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from etl_assets.datasets import get_dataset
from etl_assets.db import read_connection
from etl_assets.pipeline.metadata import load_metadata
from etl_assets.pipeline.steps import load_rows
from etl_assets.pipeline.transform import RowsToLoad
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Loads each job partition's rows into its dataset's fact table and marks the job
    completed.

    Idempotent: a step retry or a re-run reloads by natural key and never duplicates rows.
    Reading the asset back gives the fact rows the job loaded.
    """

    ledger: LedgerResource
    pipeline: PipelineSettingsResource

    def handle_output(self, context: dg.OutputContext, obj: RowsToLoad) -> None:
        """Load `obj` for the output's job; commits per chunk and completes the job."""
        completed = load_rows(self.ledger.ledger, context.run_id, obj, self.pipeline.step_policy)
        context.add_output_metadata(load_metadata(completed))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The rows the input's job loaded into the asset's table (for downstream assets)."""
        table = get_dataset(context.asset_key.path[0]).fact_table
        stmt = sa.select(table).where(table.c.job_id == context.partition_key)
        with read_connection(self.ledger.engine) as conn:
            return pd.read_sql(stmt, conn)
