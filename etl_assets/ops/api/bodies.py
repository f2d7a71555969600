"""The API's request and response bodies that are not read-model dataclasses: uploads,
retries and cancellations, row retries, the metrics report and liveness.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from etl_assets.ops import read_model as rm
from etl_assets.ops.alerts import Alert


class UploadResult(BaseModel):
    """The job an uploaded file became; `duplicate` when the same content was a job already."""

    duplicate: bool
    message: str
    job: rm.JobSummary


class RetryRequest(BaseModel):
    """Optional settings of a job retry."""

    # An unknown field is refused (422), as the description says (additionalProperties false).
    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    fixes: dict[
        Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,63}$")],
        Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")],
    ] = Field(
        default_factory=dict,
        max_length=50,
        examples=[{"currency": "EUR"}],
        # pydantic describes the key pattern as patternProperties, which alone would let any
        # other key through with any value; the server refuses those (422).
        json_schema_extra={"additionalProperties": False},
    )


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
