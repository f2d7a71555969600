"""Read queries over the jobs ledger for operators: lists, details, progress, metrics.

Plain functions over SQLAlchemy Core that return dataclasses, so the ops API, its dashboard
and the `etl` command line show the same figures. Every query runs on SQLite and PostgreSQL;
the few expressions that differ (seconds since the epoch, time buckets) are built by
`_epoch` and `_bucket`. Nothing here writes.

Import the names from here (`from etl_assets.ops import read_model as rm`); they live in
`common` (page limit, run links, the dialect helpers), `jobs` (list and detail, progress),
`failed_rows`, `metrics` and `activity` (uploads in progress, the time series).
"""

from etl_assets.ops.read_model.activity import (
    TimeBucket,
    TimeSeries,
    Upload,
    UploadsOverview,
    activity,
    uploads,
)
from etl_assets.ops.read_model.common import (
    DEFAULT_DAGSTER_UI_URL,
    EXACT_COUNT_CAP,
    MAX_OFFSET,
    MAX_PAGE,
    UNIX_EPOCH_JULIAN_DAY,
    run_url,
)
from etl_assets.ops.read_model.failed_rows import (
    FailedRow,
    FailedRowFilters,
    FailedRowPage,
    FailedRowSort,
    failed_row,
    list_failed_rows,
)
from etl_assets.ops.read_model.jobs import (
    Attempt,
    JobDetail,
    JobFilters,
    JobPage,
    JobSort,
    JobSummary,
    Progress,
    job_detail,
    list_jobs,
    progress_of,
    summarize,
)
from etl_assets.ops.read_model.metrics import (
    CompletedSample,
    Metrics,
    QueueDepth,
    RecentFailure,
    RetryStats,
    StuckJob,
    finished_in_window,
    metrics,
    read_metrics,
    recent_completions,
    status_counts,
    stuck_condition,
)

__all__ = [
    "DEFAULT_DAGSTER_UI_URL",
    "EXACT_COUNT_CAP",
    "MAX_OFFSET",
    "MAX_PAGE",
    "UNIX_EPOCH_JULIAN_DAY",
    "Attempt",
    "CompletedSample",
    "FailedRow",
    "FailedRowFilters",
    "FailedRowPage",
    "FailedRowSort",
    "JobDetail",
    "JobFilters",
    "JobPage",
    "JobSort",
    "JobSummary",
    "Metrics",
    "Progress",
    "QueueDepth",
    "RecentFailure",
    "RetryStats",
    "StuckJob",
    "TimeBucket",
    "TimeSeries",
    "Upload",
    "UploadsOverview",
    "activity",
    "failed_row",
    "finished_in_window",
    "job_detail",
    "list_failed_rows",
    "list_jobs",
    "metrics",
    "progress_of",
    "read_metrics",
    "recent_completions",
    "run_url",
    "status_counts",
    "stuck_condition",
    "summarize",
    "uploads",
]
