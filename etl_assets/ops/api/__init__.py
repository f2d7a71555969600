"""The ops HTTP API (FastAPI): jobs, uploads, failed rows, metrics, health, and the dashboard.

`create_app(settings)` builds the app; `etl api` serves it with uvicorn. Reads need a viewer
or operator bearer token, repairs and uploads an operator token (OPS_API_VIEWER_TOKENS,
OPS_API_OPERATOR_TOKENS). `/healthz`, `/readyz`, the dashboard page and the OpenAPI
description are open: they carry no job content (`/readyz` gives counts and, for stuck
jobs, their ids; the dashboard's data comes from `/v1`, with the token the user gives it).

Every error is a JSON body `{"error": {"code", "message", "request_id"}}`. Bad input is a 4xx
that says what is wrong; anything unforeseen is a 500 with a generic message and the request
id, logged with its traceback on the server only. Tracebacks of jobs are shown to operators
only.

The modules: `errors` (error bodies, request ids, exception handlers), `auth` (tokens and
roles), `bodies` (request and response models), `inputs` (patterns, limits, filters), `guards`
(request bodies bounded, write tokens checked before a body is read), `security` (CSP and the
other security headers), and the routes by concern: `routes_jobs`, `routes_failed_rows`,
`routes_monitoring`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI

from etl_assets.config import Settings
from etl_assets.datasets.registry import load_modules
from etl_assets.db import engine_for, is_postgres
from etl_assets.ledger import Ledger
from etl_assets.ops import health
from etl_assets.ops.api.auth import Auth, auth_configured
from etl_assets.ops.api.errors import (
    RequestIdMiddleware,
    _install_error_handlers,
    describe_refusals,
)
from etl_assets.ops.api.guards import RequestGuardMiddleware
from etl_assets.ops.api.routes_failed_rows import _add_failed_row_routes
from etl_assets.ops.api.routes_jobs import UPLOAD_PATH, _add_job_routes
from etl_assets.ops.api.routes_monitoring import _add_health_routes, _add_monitoring_routes
from etl_assets.ops.api.security import dashboard_html, security_headers

__all__ = ["auth_configured", "create_app"]


def create_app(
    settings: Settings,
    *,
    insecure_no_auth: bool = False,
    engine: sa.Engine | None = None,
    instance_factory: health.InstanceFactory | None = None,
    start_jobs_as_submitted: bool = False,
) -> FastAPI:
    """The ops API for `settings`. Refuses to build without tokens unless `insecure_no_auth`
    (then every caller is an operator). `instance_factory` opens the Dagster instance for
    the daemon check (default: DAGSTER_HOME's, when set). `start_jobs_as_submitted`: while
    the app runs, take settled inbox files as jobs at once (intake/inbox_watcher.py) and
    start the run of every job submitted anywhere as soon as the ledger announces it
    (runtime/due_jobs_listener.py); PostgreSQL and DAGSTER_HOME only."""
    if not insecure_no_auth and not auth_configured(settings):
        raise ValueError(
            "no OPS_API_VIEWER_TOKENS or OPS_API_OPERATOR_TOKENS are set: the API would be "
            "open to anyone. Set tokens, or pass --insecure-no-auth on a trusted machine."
        )
    app = FastAPI(
        lifespan=_starting_submitted_jobs(settings) if start_jobs_as_submitted else None,
        # Swagger UI and ReDoc load their code from a CDN, on the origin where the dashboard
        # keeps its token: not served. /openapi.json describes the API for any local viewer.
        docs_url=None,
        redoc_url=None,
        title="ETL ops API",
        version="1.0.0",
        description=(
            "Jobs, uploads, failed rows, metrics and health of the ETL job platform. "
            "Send `Authorization: Bearer <token>`: viewer tokens read, operator tokens also "
            'retry, cancel and upload. Errors are `{"error": {"code", "message", '
            '"request_id"}}`.'
        ),
    )
    load_modules(settings.dataset_module_names)  # datasets of your own, DATASET_MODULES
    app.state.settings = settings
    app.state.engine = engine or engine_for(settings)
    app.state.auth = Auth(settings, insecure=insecure_no_auth)
    app.state.instance_factory = instance_factory
    _install_error_handlers(app)
    _add_job_routes(app)
    _add_failed_row_routes(app)
    _add_monitoring_routes(app)
    _add_health_routes(app)
    describe_refusals(app)
    # The last added runs first: request id and headers, then the body and token guard.
    app.add_middleware(
        RequestGuardMiddleware,
        auth=app.state.auth,
        router=app.router,
        upload_paths={UPLOAD_PATH},
        max_upload_bytes=int(settings.ops_api_max_upload_mb * (1 << 20)),
        max_body_bytes=settings.ops_api_max_body_kb * 1024,
    )
    app.add_middleware(RequestIdMiddleware, response_headers=security_headers(dashboard_html()))
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _starting_submitted_jobs(settings: Settings) -> Lifespan:
    """A lifespan that, while the app runs, watches the inbox and listens for new jobs and
    starts their runs, as `POST /v1/jobs` does for its own (`dispatching.start_due_jobs`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from etl_assets.intake.inbox_watcher import InboxWatcher
        from etl_assets.intake.publisher import source_archive
        from etl_assets.runtime.dispatching import start_due_jobs
        from etl_assets.runtime.due_jobs_listener import DueJobsListener

        engine = app.state.engine
        ledger = Ledger(engine, max_attempts=settings.retry_max_attempts)
        listener = DueJobsListener(engine, lambda: start_due_jobs(ledger, settings))
        # Without an instance there is nothing to start runs on; without notifications
        # (SQLite) a job found here would wait for the dispatch tick all the same.
        starts = bool(settings.dagster_home) and is_postgres(engine)
        watcher = InboxWatcher(
            ledger,
            source_archive(settings.staging_dir),
            Path(settings.inbox_dir),
            settings.inbox_settle_seconds,
        )
        if starts:
            listener.start()
            watcher.start()
        try:
            yield
        finally:
            watcher.stop()
            listener.stop()

    return lifespan
