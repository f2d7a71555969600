"""Drives the code location in one process, the way the Dagster daemon would.

The sample run and the tests use it: it evaluates the real sensors on a real instance, applies
their dynamic-partition requests, and executes their run requests with the real asset job
(in process, so no daemon or code server is needed). `benchmarks/bench_daemon_jobs.py` and
`etl_assets_tests/test_daemon.py` exercise the real daemon instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class LocalDaemon:
    """Evaluates sensors and executes their run requests in this process."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    job_name: str = ""  # the job of requests that name none (sensors with one target do not)
    log_level: str = "WARNING"  # of the runs' console logs; the event log keeps everything
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(self, sensor_name: str) -> list[dg.RunRequest]:
        """Evaluate one sensor once; apply its partition requests; return its run requests."""
        sensor = self.defs.get_unresolved_sensor_def(sensor_name)
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor_name),
            definitions=self.defs,
            resources=self._resources(),
            sensor_name=sensor_name,
        ) as context:
            result = sensor(context)
        if isinstance(result, dg.SkipReason) or result is None:
            return []
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                if isinstance(request, dg.AddDynamicPartitionsRequest):
                    self.instance.add_dynamic_partitions(
                        request.partitions_def_name, list(request.partition_keys)
                    )
            if result.cursor is not None:
                self.cursors[sensor_name] = result.cursor
            return self._named(sensor, list(result.run_requests or []))
        return self._named(sensor, [r for r in result if isinstance(r, dg.RunRequest)])

    @staticmethod
    def _named(sensor: dg.SensorDefinition, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
        """The requests, refused as the daemon refuses them: a sensor with several target jobs
        must name the job of every request."""
        targets = {target.job_name for target in sensor.targets}
        for request in requests:
            if len(targets) > 1 and request.job_name not in targets:
                raise ValueError(
                    f"sensor {sensor.name} returned a run request for {request.job_name!r}; "
                    f"it must name one of {sorted(targets)}"
                )
        return requests

    def execute(
        self, request: dg.RunRequest, job_name: str | None = None
    ) -> dg.ExecuteInProcessResult:
        """Run one request of a sensor with the real job (default: the asset job)."""
        job = self.defs.resolve_job_def(job_name or request.job_name or self.job_name)
        if request.asset_selection is not None or request.asset_check_keys is not None:
            # What the daemon would launch: only the assets and checks the request names.
            job = job.get_subset(
                asset_selection=set(request.asset_selection or ()),
                asset_check_selection=(
                    set(request.asset_check_keys) if request.asset_check_keys is not None else None
                ),
            )
        logs = {"loggers": {"console": {"config": {"log_level": self.log_level}}}}
        run_config = {**(request.run_config or {}), **logs}
        return job.execute_in_process(
            partition_key=request.partition_key,
            instance=self.instance,
            tags=dict(request.tags),
            run_config=run_config,
            raise_on_error=False,
        )

    def run_tick(self, sensor_name: str) -> list[dg.ExecuteInProcessResult]:
        """One tick of `sensor_name` and every run it requests (the inbox sensor claims what it
        registers and requests its runs at once); returns their results."""
        return [self.execute(request) for request in self.tick(sensor_name)]

    def dispatch(self) -> list[dg.ExecuteInProcessResult]:
        """One dispatch tick and every run it requests; returns their results."""
        return self.run_tick("dispatch_sensor")

    def drain(self, max_ticks: int = 100) -> list[dg.ExecuteInProcessResult]:
        """Dispatch until a tick claims nothing; returns every run's result."""
        results: list[dg.ExecuteInProcessResult] = []
        for _ in range(max_ticks):
            batch = self.dispatch()
            if not batch:
                break
            results.extend(batch)
        return results

    def _resources(self) -> Mapping[str, object]:
        return dict(self.defs.resources or {})
