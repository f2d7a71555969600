"""The failed-rows routes: list quarantined rows and retry one (`/v1/failed-rows...`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam

from etl_assets.errors import PermanentError
from etl_assets.ledger import Ledger
from etl_assets.ledger.quarantine import RowStatus
from etl_assets.ops import actions
from etl_assets.ops import read_model as rm
from etl_assets.ops.api.auth import Operator, Viewer
from etl_assets.ops.api.bodies import RowRetryRequest, RowRetryResult
from etl_assets.ops.api.errors import READ_ERRORS, ApiError, _errors
from etl_assets.ops.api.inputs import (
    CURSOR_HELP,
    JOB_ID_PATTERN,
    MAX_OFFSET,
    MAX_ROW_ID,
    NAME_PATTERN,
    QueryTime,
    _range,
    _state,
)
from etl_assets.ops.examples import EXAMPLES


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
        created_from: QueryTime | None = None,
        created_to: QueryTime | None = None,
        status: Annotated[
            RowStatus | None, Query(description="Default quarantined; omit with all=true.")
        ] = RowStatus.QUARANTINED,
        all_statuses: Annotated[bool, Query(alias="all", description="Every status.")] = False,
        sort: rm.FailedRowSort = rm.FailedRowSort.CREATED_AT_DESC,
        limit: Annotated[int, Query(ge=1, le=rm.MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        cursor: Annotated[str | None, Query(max_length=500, description=CURSOR_HELP)] = None,
    ) -> rm.FailedRowPage:
        """Rows jobs could not load, with the line, raw values, stage and reason."""
        start, end = _range(created_from, created_to)
        filters = rm.FailedRowFilters(job_id, dataset, start, end, None if all_statuses else status)
        try:
            return rm.list_failed_rows(
                _state(request)[1], filters, sort=sort, limit=limit, offset=offset, cursor=cursor
            )
        except ValueError as exc:  # a cursor this list did not give, or with an offset
            raise ApiError(400, "bad_cursor", str(exc)) from None

    @app.post(
        "/v1/failed-rows/{row_id}/retry",
        response_model=RowRetryResult,
        tags=["repair"],
        summary="Retry one quarantined row",
        responses={
            200: EXAMPLES["row_retry"],
            **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
        },
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
