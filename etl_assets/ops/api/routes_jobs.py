"""The jobs routes: list, detail, CSV upload, retry and cancel (`/v1/jobs...`)."""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from etl_assets.config import Settings
from etl_assets.errors import PermanentError
from etl_assets.ledger import ErrorType, JobStatus, Ledger
from etl_assets.ops import actions
from etl_assets.ops import read_model as rm
from etl_assets.ops.api.auth import Operator, Role, Viewer
from etl_assets.ops.api.bodies import JobActionResult, RetryRequest, UploadResult
from etl_assets.ops.api.errors import READ_ERRORS, ApiError, _errors
from etl_assets.ops.api.inputs import (
    CURSOR_HELP,
    MAX_OFFSET,
    NAME_PATTERN,
    JobIdPath,
    QueryTime,
    _range,
    _state,
)
from etl_assets.ops.examples import EXAMPLES

logger = logging.getLogger("etl_assets.ops.api")  # the whole API logs as ops.api


CSV_SUFFIX = ".csv"
UPLOAD_CHUNK = 1 << 20
UPLOAD_PATH = "/v1/jobs"
MAX_NAME_CHARS = 200


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
        created_from: Annotated[QueryTime | None, Query(description="Inclusive, UTC.")] = None,
        created_to: Annotated[QueryTime | None, Query(description="Exclusive, UTC.")] = None,
        error_type: ErrorType | None = None,
        sort: rm.JobSort = rm.JobSort.CREATED_AT_DESC,
        limit: Annotated[int, Query(ge=1, le=rm.MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        cursor: Annotated[str | None, Query(max_length=500, description=CURSOR_HELP)] = None,
    ) -> rm.JobPage:
        """Jobs matching the filters, in `sort` order ('-' = descending), with the total
        (`total_is_estimate` when it is the planner's estimate) and `next_cursor`."""
        start, end = _range(created_from, created_to)
        filters = rm.JobFilters(status or (), dataset, start, end, error_type)
        try:
            return rm.list_jobs(
                _state(request)[1], filters, sort=sort, limit=limit, offset=offset, cursor=cursor
            )
        except ValueError as exc:  # a cursor this list did not give, or with an offset
            raise ApiError(400, "bad_cursor", str(exc)) from None

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
        UPLOAD_PATH,
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
        dataset: Annotated[
            str | None,
            Form(
                pattern=NAME_PATTERN,
                description="What the CSV holds; default: the one dataset whose columns its "
                "header has.",
            ),
        ] = None,
        title: Annotated[str | None, Form(max_length=200, pattern=r"^[^\x00]*$")] = None,
        priority: Annotated[int, Form(ge=-1000, le=1000)] = 0,
    ) -> JSONResponse:
        """Archive the file and create its pending job. The same content for the same dataset
        answers 200 with the existing job and `duplicate: true`; a new job answers 201."""
        settings, engine = _state(request)
        from etl_assets.intake.publisher import publish_file, source_archive
        from etl_assets.runtime.dispatching import start_due_jobs

        with tempfile.TemporaryDirectory(prefix="etl-upload-") as folder:
            path, dataset_name = _receive_csv(file, Path(folder), settings, dataset)
            ledger = Ledger(engine, max_attempts=settings.retry_max_attempts)
            published = publish_file(
                ledger,
                source_archive(settings.staging_dir),
                path,
                dataset=dataset_name,
                title=title or None,
                priority=priority,
            )
        job = published.job
        if published.created:
            note = actions.add_partitions([job])
            if note:
                logger.warning("job=%s: %s", job.job_id, note)
            start_due_jobs(ledger, settings)  # its run now, not at the dispatcher's next tick
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
        responses={200: EXAMPLES["retry"], **_errors(400, 401, 403, 404, 409, 413, 422, 503)},
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
        responses={200: EXAMPLES["cancel"], **_errors(400, 401, 403, 404, 409, 413, 422, 503)},
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


def _receive_csv(
    file: UploadFile, folder: Path, settings: Settings, dataset: str | None
) -> tuple[Path, str]:
    """Copy the upload into `folder` under its own (sanitized) name, checking size and that it
    is a CSV file of the dataset (the one its header fits, when not named); returns the path
    and the dataset's name, or raises ApiError naming what is wrong."""
    from etl_assets.datasets import dataset_for_header, get_dataset
    from etl_assets.pipeline.csv_source import CsvLimits, read_header

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(file.filename or "upload.csv").name)
    if not name.lower().endswith(CSV_SUFFIX):
        raise ApiError(415, "not_csv", f"{file.filename!r}: only .csv files are accepted")
    if len(name) > MAX_NAME_CHARS:  # shortened in the stem: the suffix stays
        name = name[: MAX_NAME_CHARS - len(CSV_SUFFIX)] + name[-len(CSV_SUFFIX) :]
    try:
        dataset_def = get_dataset(dataset) if dataset else None
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
        required = dataset_def.required_columns if dataset_def else ()
        header = read_header(path, required, name, CsvLimits.from_settings(settings))
        if dataset_def is None:
            dataset_def = dataset_for_header(header, name)
    except PermanentError as exc:
        raise ApiError(400, "invalid_csv", str(exc)) from None
    except csv.Error as exc:  # e.g. a header field longer than the csv module's field limit
        raise ApiError(
            400, "invalid_csv", f"{name}: the header is not readable CSV ({exc})"
        ) from None
    return path, dataset_def.name
