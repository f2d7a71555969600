"""The inbox sensor: CSV files dropped into INBOX_DIR/<dataset>/ become pending jobs."""

from pathlib import Path

import dagster as dg

from etl_assets.assets.partitions import add_requests
from etl_assets.intake.publisher import Refused, publish_inbox, source_archive
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.staging import StagingResource


def build_inbox_sensor(
    inbox_dir: str, settle_seconds: float, interval_seconds: int
) -> dg.SensorDefinition:
    """The sensor over `inbox_dir`, evaluated every `interval_seconds`."""

    @dg.sensor(
        name="inbox_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers CSV files dropped into {inbox_dir}/<dataset>/ as pending jobs.",
    )
    def inbox_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource, staging: StagingResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Publish settled inbox files as jobs and add their partitions."""
        refused: list[Refused] = []
        published = publish_inbox(
            ledger.ledger,
            source_archive(staging.base_dir),
            Path(inbox_dir),
            settle_seconds,
            refused,
        )
        for entry in refused:
            context.log.warning(
                f"{entry.path}: refused, it is {entry.reason}; only regular files are taken"
            )
        if not published:
            return dg.SkipReason(f"no settled CSV files in {inbox_dir}")
        new = [p.job for p in published if p.created]
        for p in published:
            verdict = "new job" if p.created else "duplicate of"
            context.log.info(f"{p.job.source_name}: {verdict} {p.job.job_id}")
        return dg.SensorResult(dynamic_partitions_requests=add_requests(new))

    return inbox_sensor
