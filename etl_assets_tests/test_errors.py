"""The one mapping from failures to transient, timeout, permanent and bug, case by case."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
import sqlalchemy.exc as sa_exc

from etl_assets.errors import (
    JobTimeoutError,
    PermanentError,
    TransientError,
    classify,
    http_error_class,
    parse_retry_after,
)
from etl_assets.ledger import ErrorType


def http_error(status: int, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = "http://fx.example/2024-01-05?base=EUR&token=secret"
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return requests.HTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, ErrorType.TRANSIENT),
        (502, ErrorType.TRANSIENT),
        (503, ErrorType.TRANSIENT),
        (408, ErrorType.TRANSIENT),
        (429, ErrorType.TRANSIENT),
        (400, ErrorType.PERMANENT),
        (401, ErrorType.PERMANENT),
        (403, ErrorType.PERMANENT),
        (404, ErrorType.PERMANENT),
        (422, ErrorType.PERMANENT),
    ],
)
def test_http_statuses(status: int, expected: ErrorType) -> None:
    assert http_error_class(status) is expected
    error = classify(http_error(status))
    assert error.error_type is expected
    assert error.message == f"HTTP {status} from http://fx.example/2024-01-05"  # no query


def test_429_keeps_retry_after() -> None:
    assert classify(http_error(429, "7")).retry_after_seconds == 7.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "exc",
    [
        requests.Timeout("read timed out"),
        requests.ConnectionError("refused"),
        TransientError("try later"),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        OSError("disk busy"),
    ],
)
def test_transient_failures(exc: BaseException) -> None:
    assert classify(exc).error_type is ErrorType.TRANSIENT
    assert classify(exc).retryable


@pytest.mark.parametrize(
    "exc",
    [
        PermanentError("missing required column"),
        sa_exc.IntegrityError("INSERT ...", {"secret": 1}, Exception("violates check")),
        sa_exc.DataError("INSERT ...", {}, Exception("value too long")),
        sa_exc.ProgrammingError("SELECT ...", {}, Exception('relation "jobs" does not exist')),
    ],
)
def test_permanent_failures(exc: BaseException) -> None:
    error = classify(exc)
    assert error.error_type is ErrorType.PERMANENT
    assert not error.retryable


@pytest.mark.parametrize(
    "exc",
    [KeyError("order_date"), TypeError("unsupported operand"), AttributeError("no .rates")],
)
def test_an_unforeseen_exception_is_a_bug_not_an_outage(exc: BaseException) -> None:
    error = classify(exc)
    assert error.error_type is ErrorType.BUG
    assert not error.retryable
    assert error.message.startswith("a bug, not bad data or an outage: unexpected ")
    assert type(exc).__name__ in error.message and "not retried" in error.message


def test_a_stale_heartbeat_is_a_timeout() -> None:
    assert classify(JobTimeoutError("no heartbeat for 300 s")).error_type is ErrorType.TIMEOUT


def test_database_messages_leave_out_sql_and_parameters() -> None:
    exc = sa_exc.IntegrityError(
        "INSERT INTO t VALUES (%(card)s)",
        {"card": "4111-1111"},
        Exception("duplicate key\nDETAIL: x"),
    )
    error = classify(exc)
    assert "4111" not in error.message
    assert "INSERT" not in error.message
    assert error.message == "database error (IntegrityError): duplicate key"


def test_the_traceback_is_kept() -> None:
    with pytest.raises(KeyError) as raised:
        pd.DataFrame().loc["missing"]
    trace = classify(raised.value).traceback
    assert trace.startswith("Traceback")
    assert "KeyError" in trace
