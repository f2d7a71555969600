"""What the routes accept and share: id and name patterns, limits, UTC date filters, and the
settings and engine the app was built with.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Path as PathParam
from fastapi import Request
from pydantic import BeforeValidator

from etl_assets.config import Settings
from etl_assets.ops import read_model as rm
from etl_assets.ops.api.errors import ApiError

JOB_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a ULID, as the ledger makes them
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_ROW_ID = 2**63 - 1
# Offsets cost the rows they skip: beyond the read model's cap, page with `cursor`.
MAX_OFFSET = rm.MAX_OFFSET
CURSOR_HELP = "The `next_cursor` of the page before: the next page, read by keyset."
MAX_WINDOW_SECONDS = 31 * 24 * 3600


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso_only(value: Any) -> Any:
    """Refuse a number: pydantic would read it as Unix time, and the schema promises an
    ISO 8601 date-time (schemathesis sent `created_from=-11310` and it was taken)."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time, not a number")
    return value


# A date-time query parameter: ISO 8601 text only.
QueryTime = Annotated[dt.datetime, BeforeValidator(_iso_only)]


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
