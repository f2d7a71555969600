"""The downstream sensor: after loads, checks the datasets that loaded and refreshes the
downstream tables built from them, in one `downstream_job` run per burst of loads.

Each tick compares, per dataset, its newest `transaction.parsed` event with what the
downstream tables have absorbed (their watermarks) and with the last event whose checks were
requested (the sensor's cursor). One run then refreshes exactly the tables whose datasets
loaded and evaluates the checks of those datasets (blocking: a red one stops the refresh)
and of every dataset that loaded since its last check, even one no table consumes.
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from etl_assets.assets.factory import DatasetDefinitions
from etl_assets.db import read_connection
from etl_assets.downstream.assets import downstream_key
from etl_assets.downstream.base import latest_event_id_of, watermark
from etl_assets.downstream.registry import DOWNSTREAM
from etl_assets.resources.ledger import LedgerResource

if TYPE_CHECKING:  # dagster does not export the type define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_downstream_sensor(
    job: "UnresolvedAssetJobDefinition",
    datasets: Sequence[DatasetDefinitions],
    table_checks: Sequence[dg.AssetChecksDefinition],
    interval_seconds: int,
) -> dg.SensorDefinition:
    """Requests a check-and-refresh run when datasets loaded since the last one;
    `table_checks` are the downstream tables' own checks, run after their refresh."""
    checks_of = {d.dataset.name: list(d.checks.check_keys) for d in datasets}
    checks_of_table: dict[str, list[dg.AssetCheckKey]] = {}
    for checks in table_checks:
        for key in checks.check_keys:
            checks_of_table.setdefault(key.asset_key.to_user_string(), []).append(key)

    @dg.sensor(
        name="downstream_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "After loads, checks the datasets that loaded and refreshes the downstream "
            "tables that consume them."
        ),
    )
    def downstream_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Checks and refreshes what the newest loads call for."""
        checked: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        with read_connection(ledger.engine) as conn:
            latest = {name: latest_event_id_of(conn, name) for name in checks_of}
            behind = [
                table
                for table in DOWNSTREAM
                if max(latest.get(name, 0) for name in table.consumes) > watermark(conn, table.name)
            ]
        to_check = {name for name, last in latest.items() if last > checked.get(name, 0)}
        to_check |= {name for table in behind for name in table.consumes if name in checks_of}
        up_to = max(latest.values(), default=0)
        if not to_check:
            return dg.SkipReason(f"downstream tables and checks are up to date (event {up_to})")
        running = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1
        )
        if running:
            return dg.SkipReason(f"run {running[0].run_id} is refreshing; waiting for it")
        config = {"up_to_event_id": up_to}
        check_keys = [key for name in sorted(to_check) for key in checks_of[name]]
        check_keys += [key for table in behind for key in checks_of_table.get(table.name, [])]
        request = dg.RunRequest(
            # One run per newest event: Dagster never launches a run_key twice.
            run_key=f"events-through-{up_to}",
            run_config={"ops": {table.name: {"config": config} for table in behind}},
            asset_selection=[downstream_key(table) for table in behind],
            asset_check_keys=check_keys,
            tags={"etl/events_through": str(up_to), "etl/datasets": ",".join(sorted(to_check))},
        )
        cursor = checked | {name: latest[name] for name in to_check}
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor, sort_keys=True))

    return downstream_sensor
