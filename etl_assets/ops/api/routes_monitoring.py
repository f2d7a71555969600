"""The monitoring and health routes: uploads in progress, metrics (JSON and Prometheus),
activity over time, liveness, readiness, and the dashboard page.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

from etl_assets.ops import health, prometheus
from etl_assets.ops import read_model as rm
from etl_assets.ops.alerts import Thresholds
from etl_assets.ops.api.auth import Viewer
from etl_assets.ops.api.bodies import Liveness, MetricsReport
from etl_assets.ops.api.errors import READ_ERRORS, ApiError, _errors
from etl_assets.ops.api.inputs import MAX_WINDOW_SECONDS, _state
from etl_assets.ops.examples import EXAMPLES


def _add_monitoring_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/uploads/active",
        response_model=rm.UploadsOverview,
        tags=["monitoring"],
        summary="Active and recent uploads",
        responses={200: EXAMPLES["uploads"], **READ_ERRORS},
    )
    def active_uploads(
        request: Request,
        _role: Viewer,
        recent_seconds: Annotated[int, Query(ge=60, le=MAX_WINDOW_SECONDS)] = 24 * 3600,
        limit: Annotated[int, Query(ge=1, le=rm.MAX_PAGE)] = 50,
    ) -> rm.UploadsOverview:
        """Processing jobs first, then jobs changed in the last `recent_seconds`: rows
        processed / total, percent, elapsed seconds, rate and ETA."""
        return rm.uploads(_state(request)[1], recent_seconds=recent_seconds, limit=limit)

    @app.get(
        "/v1/metrics",
        response_model=MetricsReport,
        tags=["monitoring"],
        summary="Ledger metrics",
        responses={200: EXAMPLES["metrics"], **READ_ERRORS},
    )
    def ledger_metrics(
        request: Request,
        _role: Viewer,
        window_seconds: Annotated[int, Query(ge=60, le=MAX_WINDOW_SECONDS)] = 24 * 3600,
        recent_failures: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> MetricsReport:
        """Counts by status, retry statistics, average duration, failure rate, recent
        failures, queue depth by priority, stuck jobs, and the alerts firing now (rules over
        the last hour; the daemon rule when DAGSTER_HOME is set)."""
        settings, engine = _state(request)
        m = rm.metrics(
            engine,
            stuck_after_seconds=settings.stuck_after_seconds,
            window_seconds=window_seconds,
            recent_failures=recent_failures,
            dagster_ui_url=settings.dagster_ui_url,
        )
        # The rules reuse these metrics: each figure is read once per request.
        firing = health.firing_alerts(
            engine,
            Thresholds.from_settings(settings),
            request.app.state.instance_factory,
            now=m.generated_at,
            metrics=m,
        )
        fields = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
        return MetricsReport(**fields, alerts=firing)

    @app.get(
        "/v1/activity",
        response_model=rm.TimeSeries,
        tags=["monitoring"],
        summary="Processing and error rate over time",
        responses={200: EXAMPLES["activity"], **READ_ERRORS, **_errors(400)},
    )
    def activity(
        request: Request,
        _role: Viewer,
        window_seconds: Annotated[int, Query(ge=600, le=7 * 24 * 3600)] = 24 * 3600,
        bucket_seconds: Annotated[int, Query(ge=60, le=24 * 3600)] = 600,
    ) -> rm.TimeSeries:
        """Per time bucket: jobs completed and failed, rows loaded per second, and the error
        rate of the attempts that ended (the dashboard's charts)."""
        try:
            return rm.activity(
                _state(request)[1], window_seconds=window_seconds, bucket_seconds=bucket_seconds
            )
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from None

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["monitoring"],
        summary="Prometheus metrics",
        responses={200: {"content": {prometheus.CONTENT_TYPE: {}}}, **_errors(401, 403, 503)},
    )
    def prometheus_metrics(request: Request, _role: Viewer) -> PlainTextResponse:
        """The ledger's gauges in the Prometheus text format (window: the last hour)."""
        settings, engine = _state(request)
        m = rm.metrics(
            engine,
            stuck_after_seconds=settings.stuck_after_seconds,
            window_seconds=3600,
            recent_failures=0,
            dagster_ui_url=None,
        )
        ready = _readiness(request, m)
        samples = prometheus.recent_samples(engine, now=m.generated_at)
        return PlainTextResponse(
            prometheus.render(m, ready, samples), media_type=prometheus.CONTENT_TYPE
        )


def _readiness(request: Request, metrics: rm.Metrics | None = None) -> health.Health:
    settings, engine = _state(request)
    return health.readiness(
        engine,
        thresholds=Thresholds.from_settings(settings),
        instance_factory=request.app.state.instance_factory,
        migration_dirs=settings.migration_dirs,
        now=metrics.generated_at if metrics else None,
        metrics=metrics,
    )


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Liveness, tags=["health"], summary="Liveness")
    def healthz() -> Liveness:
        """The API process answers (no dependency is checked). Open: no token needed."""
        return Liveness(status="ok")

    @app.get(
        "/readyz",
        response_model=health.Health,
        tags=["health"],
        summary="Readiness and health score",
        responses={
            200: EXAMPLES["readyz"],
            503: {"model": health.Health, "description": "Not ready."},
        },
    )
    def readyz(request: Request) -> JSONResponse:
        """Database reachable, schema current, Dagster daemon heartbeat fresh (when
        DAGSTER_HOME is set); a 0-100 score with the reasons it lost points, each firing
        alert among them, and the alerts. 503 when not ready. Open: no token needed; it shows
        counts and job ids, no job content."""
        result = _readiness(request)
        body = dataclasses.asdict(result)
        return JSONResponse(body, status_code=200 if result.ready else 503)

    @app.get("/dashboard", response_class=HTMLResponse, tags=["dashboard"], summary="Dashboard")
    def dashboard() -> HTMLResponse:
        """The operators' dashboard page. The page itself is open; it asks for a token
        (or takes `?token=`) and reads `/v1` with it."""
        page = resources.files("etl_assets.ops").joinpath("static/dashboard.html").read_text()
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")
