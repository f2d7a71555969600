"""The API's errors: `ApiError`, the JSON error body every failure answers with, the
OpenAPI entries of the error statuses, and the request-id middleware and exception handlers
that turn anything unforeseen into a generic 500 naming the request id.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from etl_assets.ledger.errors import IllegalTransition, JobNotFound

logger = logging.getLogger("etl_assets.ops.api")  # the whole API logs as ops.api
access_log = logging.getLogger("etl_assets.ops.access")


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
    status: int,
    code: str,
    message: str,
    request: Request | None = None,
    rid: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    rid = rid or (_request_id(request) if request is not None else None)
    body = {"error": {"code": code, "message": message, "request_id": rid}}
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=sent or None)


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
        413: "The body is larger than OPS_API_MAX_UPLOAD_MB (upload) or OPS_API_MAX_BODY_KB.",
        415: "The upload is not a CSV file.",
        502: "An enrichment API refused the row retry's request.",
        422: "A parameter is missing or malformed.",
        503: "The database (or an enrichment API) is unavailable.",
    }
    return {s: {"model": ErrorBody, "description": meaning[s]} for s in statuses}


def _methods_of(request: Request) -> list[str]:
    """Every method the request's path takes. Starlette's own `Allow` names only the first
    route of the path it tried (GET /v1/jobs, not the upload's POST beside it)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def describe_refusals(app: FastAPI) -> None:
    """Make `app`'s OpenAPI description say what every route answers before it is reached:
    413 for a body over its limit (the guard, on every route) and 405, with an `Allow`
    header naming the path's methods, for a method the path does not take."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # FastAPI keeps it in app.openapi_schema
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    _add_refusals(operation["responses"])
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _add_refusals(responses: dict[str, Any]) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    responses.setdefault(
        "413",
        {"description": "The body is larger than the route's limit.", "content": error},
    )
    responses.setdefault(
        "405",
        {
            "description": "The path does not take this method.",
            "headers": {
                "Allow": {
                    "description": "The methods the path takes, comma-separated.",
                    "schema": {"type": "string"},
                }
            },
            "content": error,
        },
    )


READ_ERRORS = _errors(401, 403, 422, 503)


class RequestIdMiddleware:
    """Give every request an id (the `X-Request-ID` response header) and an access-log line,
    add the security headers to every response, and turn any unhandled exception into a
    generic 500 that names the request id; the traceback goes to the server log only.

    The access log leaves out query strings: the dashboard's `?token=` must not end up in it
    (uvicorn's own access log, which would print it, is turned off by `etl api`).
    """

    def __init__(self, app: Any, response_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.app = app
        self.response_headers = list(response_headers)

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
                message["headers"] = [
                    *message.get("headers", []),
                    *self.response_headers,
                    (b"x-request-id", rid.encode()),
                ]
                access_log.info(
                    "%s %s -> %s in %.0f ms (request id %s)",
                    scope["method"],
                    scope["path"],
                    message["status"],
                    (time.perf_counter() - began) * 1000,
                    rid,
                )
            await send(message)

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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(request))
        return _error(exc.status_code, code, str(exc.detail), request, headers=headers)

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
