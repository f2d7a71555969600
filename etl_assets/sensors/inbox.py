"""The inbox sensor: CSV files dropped into INBOX_DIR/<dataset>/ become pending jobs, and the
tick that registers them also claims and requests their runs."""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.partitions import add_requests
from etl_assets.intake.publisher import Refused, publish_inbox, source_archive
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.staging import StagingResource
from etl_assets.runtime.dispatching import RunPlan, plan_runs

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_inbox_sensor(
    inbox_dir: str,
    settle_seconds: float,
    interval_seconds: int,
    jobs: Sequence["UnresolvedAssetJobDefinition | dg.JobDefinition"] = (),
    plan: RunPlan | None = None,
) -> dg.SensorDefinition:
    """The sensor over `inbox_dir`, evaluated every `interval_seconds`. With `plan` (and the
    `jobs` its runs target) a tick that registers new files dispatches at once, as the
    dispatch sensor would: a dropped file then waits for one tick, not for two."""

    @dg.sensor(
        name="inbox_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers CSV files dropped into {inbox_dir}/<dataset>/ as pending jobs"
        + (" and starts their runs." if plan else "."),
        jobs=list(jobs) or None,
    )
    def inbox_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource, staging: StagingResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Publish settled inbox files as jobs and add their partitions; with a run plan,
        claim due jobs (the ledger's atomic claim, the dispatch sensor's) and request runs."""
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
        if not new or plan is None:
            return dg.SensorResult(dynamic_partitions_requests=add_requests(new))
        # The new jobs are due now: claim them (and whatever else is due, by priority then
        # age) in this tick rather than at the dispatch sensor's next one.
        claimed = ledger.ledger.claim_due(plan.batch_size)
        if claimed:
            context.log.info(
                f"claimed {len(claimed)} job(s): {', '.join(j.job_id for j in claimed)}"
            )
        ids = {j.job_id for j in new}
        return dg.SensorResult(
            run_requests=plan_runs(claimed, plan.jobs_per_run, plan.small_job_bytes),
            dynamic_partitions_requests=add_requests(
                [*new, *(j for j in claimed if j.job_id not in ids)]
            ),
        )

    return inbox_sensor
