"""Error classes and the one place that decides whether a failure is worth retrying.

DESIGN.md ("Errors"): HTTP 5xx, timeouts, connection errors, 429, database disconnects and lock
timeouts are transient; a malformed or empty file, a missing required column, an unknown
dataset, HTTP 4xx other than 408/429 and a job whose rows are all invalid are permanent.
An invalid row is neither: it is quarantined and the job goes on. An exception nobody
foresaw (a KeyError, a TypeError in the platform's or a dataset's own code) is a bug: neither
an outage nor bad data, so it is not retried as if the network were down; its message says
so and its traceback is kept for whoever fixes it.
"""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass

import requests
import sqlalchemy.exc as sa_exc

from etl_assets.ledger.models import ErrorType
from etl_assets.ledger.storable import storable_text


class EtlError(Exception):
    """Base class of errors the platform raises on purpose, with an operator-facing message."""


class TransientError(EtlError):
    """A failure that may pass by itself: the job is retried (with backoff)."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PermanentError(EtlError):
    """A failure that a retry cannot fix: the job fails at once, without retries."""


class JobTimeoutError(TransientError):
    """The job's heartbeat went stale: its run hung or died."""


@dataclass(frozen=True)
class ClassifiedError:
    """How a failure is recorded in the ledger."""

    error_type: ErrorType
    message: str
    traceback: str
    retry_after_seconds: float | None = None

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed."""
        return self.error_type in (ErrorType.TRANSIENT, ErrorType.TIMEOUT)


TRANSIENT_HTTP_STATUSES = frozenset({408, 429})


def classify(exc: BaseException) -> ClassifiedError:
    """Map any exception to transient, timeout or permanent, with a short safe message."""
    trace = "".join(tb.format_exception(exc))
    error_type, message, retry_after = _classify(exc)
    # The message and traceback may quote the input (a header with a NUL byte): they go to
    # the ledger and to Dagster's event log, and PostgreSQL text cannot hold a NUL.
    return ClassifiedError(error_type, storable_text(message), storable_text(trace), retry_after)


def _classify(exc: BaseException) -> tuple[ErrorType, str, float | None]:
    if isinstance(exc, JobTimeoutError):
        return ErrorType.TIMEOUT, str(exc), None
    if isinstance(exc, TransientError):
        return ErrorType.TRANSIENT, str(exc), exc.retry_after_seconds
    if isinstance(exc, PermanentError):
        return ErrorType.PERMANENT, str(exc), None
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _classify_http_status(exc.response)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return ErrorType.TRANSIENT, f"{type(exc).__name__}: {_url_free(exc)}", None
    if isinstance(exc, sa_exc.DBAPIError):
        return _classify_database(exc)
    if isinstance(exc, sa_exc.SQLAlchemyError | OSError | MemoryError):
        return ErrorType.TRANSIENT, f"{type(exc).__name__}: {exc}", None
    # Retrying a bug gives the same bug three times and reads as an outage in the ledger and
    # the alerts: fail at once, and say what it is.
    return ErrorType.BUG, bug_message(exc), None


def bug_message(exc: BaseException) -> str:
    """What an operator reads about an unforeseen exception."""
    detail = str(exc)[:300]
    return (
        f"a bug, not bad data or an outage: unexpected {type(exc).__name__}"
        + (f" ({detail})" if detail else "")
        + " in the platform's or the dataset's code; not retried. The traceback shows where; "
        "once the code is fixed, `etl retry` the job"
    )


def http_error_class(status: int) -> ErrorType:
    """Transient for 5xx, 408 and 429; permanent for any other 4xx."""
    if status >= 500 or status in TRANSIENT_HTTP_STATUSES:
        return ErrorType.TRANSIENT
    return ErrorType.PERMANENT


def _classify_http_status(response: requests.Response) -> tuple[ErrorType, str, float | None]:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = f"HTTP {status} from {response.url.split('?')[0]}"
    return http_error_class(status), message, retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds; None when absent or a date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _classify_database(exc: sa_exc.DBAPIError) -> tuple[ErrorType, str, float | None]:
    # Never put the SQL statement or its parameters in the message: they may hold row data.
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    message = f"database error ({type(exc).__name__}): {detail}"
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
    ):
        return ErrorType.TRANSIENT, message, None
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError | sa_exc.ProgrammingError):
        return ErrorType.PERMANENT, message, None
    return ErrorType.TRANSIENT, message, None


def _url_free(exc: requests.RequestException) -> str:
    # requests puts the full URL (with query parameters) into its messages; keep the host.
    request = exc.request
    if request is not None and request.url:
        return f"request to {request.url.split('?')[0]} failed"
    return "request failed"
