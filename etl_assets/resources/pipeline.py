"""Settings the asset steps share, as a resource so the UI shows them with each run."""

import dagster as dg

from etl_assets.runs.retries import Backoff
from etl_assets.runs.tracking import StepPolicy


class PipelineSettingsResource(dg.ConfigurableResource):
    """Chunk size, reporting currency, heartbeat and retry behaviour of the job pipeline."""

    chunk_rows: int = 100_000
    reporting_currency: str = "EUR"
    heartbeat_seconds: float = 30.0
    backoff_base_seconds: float = 30.0
    backoff_multiplier: float = 2.0
    backoff_max_seconds: float = 3600.0
    backoff_jitter: float = 0.25
    # A retry that must wait longer than this is re-dispatched instead of sleeping in the run.
    max_in_run_wait_seconds: float = 300.0
    # How much of a file the reader takes (the CSV_MAX_* settings), the run's own:
    # pipeline.csv_source.CsvLimits.from_pipeline reads them.
    csv_max_columns: int = 1000
    csv_max_cell_chars: int = 10_000
    csv_max_field_chars: int = 1_000_000
    csv_max_line_chars: int = 2_000_000

    @property
    def step_policy(self) -> StepPolicy:
        """How job steps keep their heartbeat and retry."""
        return StepPolicy(
            backoff=Backoff(
                self.backoff_base_seconds,
                self.backoff_multiplier,
                self.backoff_max_seconds,
                self.backoff_jitter,
            ),
            heartbeat_seconds=self.heartbeat_seconds,
            max_in_run_wait_seconds=self.max_in_run_wait_seconds,
        )
