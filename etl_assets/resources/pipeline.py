"""Settings the asset steps share, as a resource so the UI shows them with each run."""

import dagster as dg


class PipelineSettingsResource(dg.ConfigurableResource):
    """Chunk size, heartbeat interval and reporting currency of the job pipeline."""

    chunk_rows: int = 100_000
    heartbeat_seconds: float = 30.0
    reporting_currency: str = "EUR"
