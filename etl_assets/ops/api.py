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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from etl_assets.config import Settings
from etl_assets.db import engine_for
from etl_assets.errors import PermanentError
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.ledger.errors import IllegalTransition, JobNotFound
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ops import actions, health, prometheus
from etl_assets.ops import read_model as rm
from etl_assets.ops.alerts import Alert, Thresholds
from etl_assets.ops.examples import EXAMPLES

logger = logging.getLogger(__name__)
access_log = logging.getLogger("etl_assets.ops.access")

JOB_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a ULID, as the ledger makes them
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_ROW_ID = 2**63 - 1
MAX_OFFSET = 1_000_000_000
MAX_WINDOW_SECONDS = 31 * 24 * 3600
CSV_SUFFIX = ".csv"
UPLOAD_CHUNK = 1 << 20


# ------------------------------------------------------------------------------ errors


class ApiError(Exception):
    """An error the client can act on: an HTTP status, a stable code and a clear message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(examples=["job_not_found"])
    message: str = Field(examples=["job 01JD3S6S8F0000000000000000 does not exist in the ledger"])
    request_id: str | None = Field(default=None, examples=["9f1c2e7a5b3d4c6e"])


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


def _error(
    status: int, code: str, message: str, request: Request | None = None, rid: str | None = None
) -> JSONResponse:
    rid = rid or (_request_id(request) if request is not None else None)
    body = {"error": {"code": code, "message": message, "request_id": rid}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer."""
    meaning = {
        400: "Bad input (filters, ids, file content).",
        401: "No bearer token, or an unknown one.",
        403: "The token's role may not do this.",
        404: "No such job or row.",
        409: "The job's state does not allow this.",
        413: "The upload is larger than OPS_API_MAX_UPLOAD_MB.",
        415: "The upload is not a CSV file.",
        502: "An enrichment API refused the row retry's request.",
        422: "A parameter is missing or malformed.",
        503: "The database (or an enrichment API) is unavailable.",
    }
    return {s: {"model": ErrorBody, "description": meaning[s]} for s in statuses}


READ_ERRORS = _errors(401, 403, 422, 503)


class RequestIdMiddleware:
    """Give every request an id (the `X-Request-ID` response header) and an access-log line,
    refuse uploads larger than the limit before reading them, and turn any unhandled
    exception into a generic 500 that names the request id; the traceback goes to the server
    log only.

    The access log leaves out query strings: the dashboard's `?token=` must not end up in it
    (uvicorn's own access log, which would print it, is turned off by `etl api`).
    """

    def __init__(self, app: Any, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        started = False
        began = time.perf_counter()

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                access_log.info(
                    "%s %s -> %s in %.0f ms (request id %s)",
                    scope["method"],
                    scope["path"],
                    message["status"],
                    (time.perf_counter() - began) * 1000,
                    rid,
                )
            await send(message)

        if self._too_large(scope):
            limit_mb = self.max_upload_bytes / (1 << 20)
            response = _error(
                413, "file_too_large", f"the upload is larger than {limit_mb:g} MB", rid=rid
            )
            await response(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "request %s %s failed (request id %s)", scope["method"], scope["path"], rid
            )
            if started:
                raise
            message = f"internal error; quote request id {rid} to the operators"
            response = _error(500, "internal_error", message, rid=rid)
            await response(scope, receive, send_with_id)

    def _too_large(self, scope: MutableMapping[str, Any]) -> bool:
        if scope["method"] != "POST" or scope["path"] != "/v1/jobs":
            return False
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"").decode()
        # Multipart framing adds a little; the exact file size is checked while reading.
        return length.isdigit() and int(length) > self.max_upload_bytes + 64 * 1024


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(problems), request)

    @app.exception_handler(JobNotFound)
    async def not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return _error(404, "job_not_found", str(exc), request)

    @app.exception_handler(IllegalTransition)
    async def conflict(request: Request, exc: IllegalTransition) -> JSONResponse:
        return _error(409, "illegal_transition", str(exc), request)

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def database(request: Request, exc: sa.exc.SQLAlchemyError) -> JSONResponse:
        logger.error("database error (request id %s): %s", _request_id(request), exc)
        return _error(
            503,
            "database_unavailable",
            "the database is unavailable or not migrated; see /readyz and the API's log",
            request,
        )


# ------------------------------------------------------------------------------ auth


class Role:
    """What a token may do: viewers read, operators also repair and upload."""

    VIEWER = "viewer"
    OPERATOR = "operator"


def _tokens(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


def auth_configured(settings: Settings) -> bool:
    """True when at least one viewer or operator token is set."""
    return bool(
        _tokens(settings.ops_api_viewer_tokens) or _tokens(settings.ops_api_operator_tokens)
    )


bearer = HTTPBearer(auto_error=False, description="A viewer or operator token from the settings.")


class Auth:
    """Maps bearer tokens to roles, comparing in constant time."""

    def __init__(self, settings: Settings, *, insecure: bool) -> None:
        self.operators = _tokens(settings.ops_api_operator_tokens)
        self.viewers = _tokens(settings.ops_api_viewer_tokens)
        self.insecure = insecure

    def role_of(self, token: str | None) -> str | None:
        if self.insecure:
            return Role.OPERATOR
        if not token:
            return None
        given = token.encode()
        if any(hmac.compare_digest(given, t.encode()) for t in self.operators):
            return Role.OPERATOR
        if any(hmac.compare_digest(given, t.encode()) for t in self.viewers):
            return Role.VIEWER
        return None


def _requires(role: str) -> Callable[..., Awaitable[str]]:
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        auth: Auth = request.app.state.auth
        found = auth.role_of(credentials.credentials if credentials else None)
        if found is None:
            message = "no bearer token given" if credentials is None else "unknown bearer token"
            raise ApiError(401, "unauthorized", f"{message}: send Authorization: Bearer <token>")
        if role == Role.OPERATOR and found != Role.OPERATOR:
            raise ApiError(403, "forbidden", "this needs an operator token; yours is a viewer's")
        return found

    return check


Viewer = Annotated[str, Depends(_requires(Role.VIEWER))]
Operator = Annotated[str, Depends(_requires(Role.OPERATOR))]


# ------------------------------------------------------------------------------ bodies


class UploadResult(BaseModel):
    """The job an uploaded file became; `duplicate` when the same content was a job already."""

    duplicate: bool
    message: str
    job: rm.JobSummary


class RetryRequest(BaseModel):
    """Optional settings of a job retry."""

    priority: int | None = Field(
        default=None,
        ge=-1000,
        le=1000,
        description="At least this priority (default RETRY_PRIORITY).",
    )


class JobActionResult(BaseModel):
    """A job after an operator's action, and what was done."""

    message: str
    job: rm.JobSummary


class RowRetryRequest(BaseModel):
    """Corrections applied to the row before it is validated again."""

    fixes: dict[
        Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,63}$")],
        Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")],
    ] = Field(default_factory=dict, max_length=50, examples=[{"currency": "EUR"}])


class RowRetryResult(BaseModel):
    """What a retry did to one quarantined row."""

    row_id: int
    status: str = Field(description="loaded, duplicate, quarantined (still failing) or skipped")
    message: str
    retry_count: int
    row: rm.FailedRow | None


@dataclasses.dataclass(frozen=True)
class MetricsReport(rm.Metrics):
    """The ledger's metrics and the alerts firing now. The alert rules look at the last hour
    (whatever `window_seconds` is) and use the ALERT_* settings, like the alerts sensor."""

    alerts: list[Alert] = dataclasses.field(default_factory=list)


class Liveness(BaseModel):
    """The process answers."""

    status: str = Field(examples=["ok"])


# ------------------------------------------------------------------------------ helpers


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive datetime from a query string is UTC; an aware one is converted to UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise ApiError(400, "bad_filter", f"{value.isoformat()} is out of range in UTC") from None


def _range(start: dt.datetime | None, end: dt.datetime | None) -> tuple[Any, Any]:
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        raise ApiError(400, "bad_filter", "created_from must be before created_to")
    return start, end


def _state(request: Request) -> tuple[Settings, sa.Engine]:
    return request.app.state.settings, request.app.state.engine


JobIdPath = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="A job id (ULID).")]


# ------------------------------------------------------------------------------ routes


def _add_job_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/jobs",
        response_model=rm.JobPage,
        tags=["jobs"],
        summary="List jobs",
        responses={200: EXAMPLES["jobs"], **READ_ERRORS, **_errors(400)},
    )
    def list_jobs(
        request: Request,
        _role: Viewer,
        status: Annotated[list[JobStatus] | None, Query(description="Repeatable.")] = None,
        dataset: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        created_from: Annotated[dt.datetime | None, Query(description="Inclusive, UTC.")] = None,
        created_to: Annotated[dt.datetime | None, Query(description="Exclusive, UTC.")] = None,
        error_type: ErrorType | None = None,
        sort: rm.JobSort = rm.JobSort.CREATED_AT_DESC,
        limit: Annotated[int, Query(ge=1, le=rm.MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> rm.JobPage:
        """Jobs matching the filters, in `sort` order ('-' = descending), with the total."""
        start, end = _range(created_from, created_to)
        filters = rm.JobFilters(status or (), dataset, start, end, error_type)
        return rm.list_jobs(_state(request)[1], filters, sort=sort, limit=limit, offset=offset)

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=rm.JobDetail,
        tags=["jobs"],
        summary="Everything on one job",
        responses={200: EXAMPLES["job"], **READ_ERRORS, **_errors(404)},
    )
    def get_job(request: Request, role: Viewer, job_id: JobIdPath) -> rm.JobDetail:
        """The job's ledger row, progress (percent, rows/s, ETA), attempts and Dagster run
        links. `job.error_traceback` is shown to operators only (null for viewers)."""
        settings, engine = _state(request)
        detail = rm.job_detail(engine, job_id, dagster_ui_url=settings.dagster_ui_url)
        if role != Role.OPERATOR and detail.job.error_traceback:
            job = dataclasses.replace(detail.job, error_traceback=None)
            detail = dataclasses.replace(detail, job=job)
        return detail

    @app.post(
        "/v1/jobs",
        response_model=UploadResult,
        status_code=201,
        tags=["jobs"],
        summary="Upload a CSV file as a job",
        responses={
            200: {"model": UploadResult, "description": "The same content was a job already."},
            201: EXAMPLES["upload"],
            **_errors(400, 401, 403, 413, 415, 422, 503),
        },
    )
    def upload(
        request: Request,
        _role: Operator,
        file: Annotated[UploadFile, File(description="The CSV file.")],
        dataset: Annotated[str, Form(pattern=NAME_PATTERN)] = "sales",
        title: Annotated[str | None, Form(max_length=200, pattern=r"^[^\x00]*$")] = None,
        priority: Annotated[int, Form(ge=-1000, le=1000)] = 0,
    ) -> JSONResponse:
        """Archive the file and create its pending job. The same content for the same dataset
        answers 200 with the existing job and `duplicate: true`; a new job answers 201."""
        settings, engine = _state(request)
        from etl_assets.intake.publisher import publish_file, source_archive

        with tempfile.TemporaryDirectory(prefix="etl-upload-") as folder:
            path = _receive_csv(file, Path(folder), settings, dataset)
            ledger = Ledger(engine, max_attempts=settings.retry_max_attempts)
            published = publish_file(
                ledger,
                source_archive(settings.staging_dir),
                path,
                dataset=dataset,
                title=title or None,
                priority=priority,
            )
        job = published.job
        if published.created:
            note = actions.add_partitions([job])
            if note:
                logger.warning("job=%s: %s", job.job_id, note)
        message = (
            f"job {job.job_id} created from {job.source_name}"
            if published.created
            else f"the same content is job {job.job_id} already ({job.status}); no new job"
        )
        result = UploadResult(
            duplicate=not published.created, message=message, job=rm.summarize(job)
        )
        return JSONResponse(
            result.model_dump(mode="json"), status_code=201 if published.created else 200
        )

    @app.post(
        "/v1/jobs/{job_id}/retry",
        response_model=JobActionResult,
        tags=["repair"],
        summary="Retry a failed job",
        responses={200: EXAMPLES["retry"], **_errors(400, 401, 403, 404, 409, 422, 503)},
    )
    def retry_job(
        request: Request, _role: Operator, job_id: JobIdPath, body: RetryRequest | None = None
    ) -> JobActionResult:
        """Put a failed or cancelled job back to pending with a fresh attempt budget (its
        history is kept) and at least RETRY_PRIORITY, so it goes first. 409 otherwise."""
        settings, engine = _state(request)
        ledger = Ledger(engine, max_attempts=settings.retry_max_attempts)
        [job] = actions.retry_jobs(
            ledger, settings, [job_id], priority=body.priority if body else None
        )
        return JobActionResult(
            message=f"job {job_id} is pending again (priority {job.priority}, "
            f"{job.attempts_left} attempts)",
            job=rm.summarize(job),
        )

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        response_model=JobActionResult,
        tags=["repair"],
        summary="Cancel a pending or running job",
        responses={200: EXAMPLES["cancel"], **_errors(400, 401, 403, 404, 409, 422, 503)},
    )
    def cancel_job(request: Request, _role: Operator, job_id: JobIdPath) -> JobActionResult:
        """Cancel the job; a running job's Dagster run is asked to terminate (it also stops by
        itself at its next heartbeat). 409 when the job has finished."""
        settings, engine = _state(request)
        cancelled = actions.cancel_job(
            Ledger(engine, max_attempts=settings.retry_max_attempts), job_id
        )
        note = f"; {cancelled.run_note}" if cancelled.run_note else ""
        return JobActionResult(
            message=f"job {job_id} cancelled{note}", job=rm.summarize(cancelled.job)
        )


def _receive_csv(file: UploadFile, folder: Path, settings: Settings, dataset: str) -> Path:
    """Copy the upload into `folder` under its own (sanitized) name, checking size and that it
    is a CSV file of the dataset; raises ApiError naming what is wrong."""
    from etl_assets.datasets import get_dataset
    from etl_assets.pipeline.csv_source import read_header

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(file.filename or "upload.csv").name)[:200]
    if not name.lower().endswith(CSV_SUFFIX):
        raise ApiError(415, "not_csv", f"{file.filename!r}: only .csv files are accepted")
    try:
        dataset_def = get_dataset(dataset)
    except PermanentError as exc:
        raise ApiError(400, "unknown_dataset", str(exc)) from None
    limit = int(settings.ops_api_max_upload_mb * (1 << 20))
    path = folder / name
    size = 0
    with path.open("wb") as out:
        while block := file.file.read(UPLOAD_CHUNK):
            if size == 0 and b"\x00" in block[:8192]:
                raise ApiError(415, "not_csv", f"{name}: binary content, not a CSV text file")
            size += len(block)
            if size > limit:
                raise ApiError(
                    413,
                    "file_too_large",
                    f"{name}: larger than {settings.ops_api_max_upload_mb:g} MB",
                )
            out.write(block)
    try:
        read_header(path, dataset_def.required_columns, name)
    except PermanentError as exc:
        raise ApiError(400, "invalid_csv", str(exc)) from None
    return path


def _add_failed_row_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/failed-rows",
        response_model=rm.FailedRowPage,
        tags=["failed rows"],
        summary="List quarantined rows",
        responses={200: EXAMPLES["failed_rows"], **READ_ERRORS, **_errors(400)},
    )
    def list_failed_rows(
        request: Request,
        _role: Viewer,
        job_id: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
        dataset: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        created_from: dt.datetime | None = None,
        created_to: dt.datetime | None = None,
        status: Annotated[
            RowStatus | None, Query(description="Default quarantined; omit with all=true.")
        ] = RowStatus.QUARANTINED,
        all_statuses: Annotated[bool, Query(alias="all", description="Every status.")] = False,
        sort: rm.FailedRowSort = rm.FailedRowSort.CREATED_AT_DESC,
        limit: Annotated[int, Query(ge=1, le=rm.MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> rm.FailedRowPage:
        """Rows jobs could not load, with the line, raw values, stage and reason."""
        start, end = _range(created_from, created_to)
        filters = rm.FailedRowFilters(job_id, dataset, start, end, None if all_statuses else status)
        return rm.list_failed_rows(
            _state(request)[1], filters, sort=sort, limit=limit, offset=offset
        )

    @app.post(
        "/v1/failed-rows/{row_id}/retry",
        response_model=RowRetryResult,
        tags=["repair"],
        summary="Retry one quarantined row",
        responses={200: EXAMPLES["row_retry"], **_errors(400, 401, 403, 404, 409, 422, 502, 503)},
    )
    def retry_row(
        request: Request,
        _role: Operator,
        row_id: Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)],
        body: RowRetryRequest | None = None,
    ) -> RowRetryResult:
        """Validate and enrich the row again (after `fixes`) and load it if it now passes.
        Only rows of completed jobs; a failed job is retried as a whole."""
        settings, engine = _state(request)
        if rm.failed_row(engine, row_id) is None:
            raise ApiError(404, "row_not_found", f"no quarantined row has id {row_id}")
        ledger = Ledger(engine, max_attempts=settings.retry_max_attempts)
        try:
            result = actions.retry_failed_rows(
                ledger, settings, row_ids=[row_id], fixes=body.fixes if body else None
            )
        except actions.EnrichmentFailure as exc:
            raise _enrichment_error(exc) from None
        except PermanentError as exc:
            raise ApiError(400, "row_retry_failed", str(exc)) from None
        except FileNotFoundError as exc:
            raise ApiError(
                409, "source_missing", f"the job's archived file is gone: {exc}"
            ) from None
        row = rm.failed_row(engine, row_id)
        status, message = _row_outcome(row_id, result)
        return RowRetryResult(
            row_id=row_id,
            status=status,
            message=message,
            retry_count=row.retry_count if row else 0,
            row=row,
        )


def _enrichment_error(exc: actions.EnrichmentFailure) -> ApiError:
    """An FX or catalog API failure during a row retry (classified like a job's, the same
    message as `etl failed-rows retry`): down or overloaded (retry later) is a 503, a refusal
    (HTTP 4xx) a 502."""
    if exc.retryable:
        return ApiError(503, "enrichment_unavailable", str(exc))
    return ApiError(502, "enrichment_failed", str(exc))


def _row_outcome(row_id: int, result: Any) -> tuple[str, str]:
    if row_id in result.loaded:
        return "loaded", "the row passed and was loaded"
    if row_id in result.duplicate:
        return "duplicate", "the row passed; its key was loaded already"
    if row_id in result.still_failing:
        return "quarantined", f"still failing: {result.still_failing[row_id]}"
    if row_id in result.skipped:
        return "skipped", result.skipped[row_id]
    return "skipped", "the row is not in quarantine (loaded or duplicate already)"


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
        firing = health.firing_alerts(
            engine, Thresholds.from_settings(settings), request.app.state.instance_factory
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
            dagster_ui_url=None,
        )
        ready = _readiness(request)
        return PlainTextResponse(prometheus.render(m, ready), media_type=prometheus.CONTENT_TYPE)


def _readiness(request: Request) -> health.Health:
    settings, engine = _state(request)
    return health.readiness(
        engine,
        thresholds=Thresholds.from_settings(settings),
        instance_factory=request.app.state.instance_factory,
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


def create_app(
    settings: Settings,
    *,
    insecure_no_auth: bool = False,
    engine: sa.Engine | None = None,
    instance_factory: health.InstanceFactory | None = None,
) -> FastAPI:
    """The ops API for `settings`. Refuses to build without tokens unless `insecure_no_auth`
    (then every caller is an operator). `instance_factory` opens the Dagster instance for
    the daemon check (default: DAGSTER_HOME's, when set)."""
    if not insecure_no_auth and not auth_configured(settings):
        raise ValueError(
            "no OPS_API_VIEWER_TOKENS or OPS_API_OPERATOR_TOKENS are set: the API would be "
            "open to anyone. Set tokens, or pass --insecure-no-auth on a trusted machine."
        )
    app = FastAPI(
        title="ETL ops API",
        version="1.0.0",
        description=(
            "Jobs, uploads, failed rows, metrics and health of the ETL job platform. "
            "Send `Authorization: Bearer <token>`: viewer tokens read, operator tokens also "
            'retry, cancel and upload. Errors are `{"error": {"code", "message", '
            '"request_id"}}`.'
        ),
    )
    app.state.settings = settings
    app.state.engine = engine or engine_for(settings)
    app.state.auth = Auth(settings, insecure=insecure_no_auth)
    app.state.instance_factory = instance_factory
    _install_error_handlers(app)
    _add_job_routes(app)
    _add_failed_row_routes(app)
    _add_monitoring_routes(app)
    _add_health_routes(app)
    app.add_middleware(
        RequestIdMiddleware, max_upload_bytes=int(settings.ops_api_max_upload_mb * (1 << 20))
    )
    return app
