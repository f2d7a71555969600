"""Tables of the jobs ledger. The migrations in `etl_assets/migrations` create them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from etl_assets.db import JSONType, UTCDateTime, metadata
from etl_assets.ledger.models import AttemptOutcome, ErrorType, JobStatus


def _one_of(column: str, enum: type[JobStatus | ErrorType | AttemptOutcome]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


FAILED_OUTCOMES = "outcome IN ('failed', 'timed_out')"


def _where(condition: str) -> dict[str, Any]:
    """The keyword arguments of a partial index on both dialects."""
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("source_uri", sa.Text, nullable=False),
    sa.Column("source_name", sa.String(255), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("error_type", sa.String(32)),
    sa.Column("error_message", sa.Text),
    sa.Column("error_traceback", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("last_heartbeat_at", UTCDateTime),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("rows_total", sa.BigInteger),
    sa.Column("rows_processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_duplicate", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("checkpoint", JSONType),
    sa.Column("metrics", JSONType),
    sa.UniqueConstraint("dataset", "content_sha256"),
    sa.CheckConstraint(_one_of("status", JobStatus), name="status"),
    sa.CheckConstraint(_one_of("error_type", ErrorType), name="error_type"),
    sa.CheckConstraint(
        "attempts >= 0 AND retry_count >= 0 AND retry_count <= attempts "
        "AND attempts <= max_attempts",
        name="attempts",
    ),
    # The dispatch claim: pending jobs by priority, then age.
    sa.Index("ix_jobs_status_priority_created", "status", sa.text("priority DESC"), "created_at"),
    sa.Index("ix_jobs_completed_at", "completed_at"),
    sa.Index("ix_jobs_status_heartbeat", "status", "last_heartbeat_at"),
    sa.Index("ix_jobs_run_id", "run_id"),
    # Newest-first listings, overall and per status / dataset; recent failures; retention.
    sa.Index("ix_jobs_created_at", "created_at"),
    sa.Index("ix_jobs_status_created", "status", "created_at"),
    sa.Index("ix_jobs_dataset_created", "dataset", "created_at"),
    sa.Index("ix_jobs_status_completed", "status", "completed_at"),
    # Partial indexes: the few rows a monitoring query wants out of a million.
    sa.Index("ix_jobs_retried", "created_at", **_where("retry_count > 0")),
    # The operators' reads (migration 0010): one index per `list_jobs` order, ending in the
    # job_id tie-break, so a keyset page is the next entries of one index; the windowed
    # figures from the index alone; the retry statistics from the retried jobs only.
    sa.Index("ix_jobs_updated_job", "updated_at", "job_id"),
    sa.Index("ix_jobs_completed_job", "completed_at", "job_id"),
    sa.Index("ix_jobs_priority_job", "priority", "job_id"),
    sa.Index("ix_jobs_status_job", "status", "job_id"),
    sa.Index("ix_jobs_completed_figures", "completed_at", "status", "started_at", "rows_loaded"),
    sa.Index("ix_jobs_retry_count", "retry_count", **_where("retry_count > 0")),
)

# Jobs per dataset and status, kept by triggers on `jobs` (migration 0003): counting a
# million-row ledger takes ~100 ms, reading this table well under 1 ms.
job_status_counts = sa.Table(
    "job_status_counts",
    metadata,
    sa.Column("dataset", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("jobs", sa.BigInteger, nullable=False),
)

# Jobs retried and retries in all (one row, id 1), kept by triggers on `jobs` (migration 0010):
# the retry statistics over a million jobs without walking the retried ones.
job_retry_totals = sa.Table(
    "job_retry_totals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("jobs_retried", sa.BigInteger, nullable=False),
    sa.Column("total_retries", sa.BigInteger, nullable=False),
)

# The finished jobs' figures per minute of completed_at and final status, kept by triggers
# on `jobs` on PostgreSQL (migration 0011; empty on SQLite): the windowed metrics and the
# dashboard's buckets without reading each job of the window.
job_finished_minutes = sa.Table(
    "job_finished_minutes",
    metadata,
    sa.Column("minute", UTCDateTime, primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("jobs", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("timed_jobs", sa.BigInteger, nullable=False),
    sa.Column("work_ms", sa.BigInteger, nullable=False),
    sa.Column("exhausted", sa.BigInteger, nullable=False),
)

# What remains of a job `etl prune` removed: enough for lineage (the warehouse's rows keep
# their job id) and for counting what was loaded, without attempts, tracebacks or rows.
pruned_jobs = sa.Table(
    "pruned_jobs",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("pruned_at", UTCDateTime, nullable=False),
)

job_attempts = sa.Table(
    "job_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.String(32),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("worker", sa.String(255)),  # the Celery worker's name, or host:pid
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_type", sa.String(32)),
    sa.Column("error_message", sa.Text),
    sa.UniqueConstraint("job_id", "attempt"),
    sa.CheckConstraint(_one_of("outcome", AttemptOutcome), name="outcome"),
    sa.Index("ix_job_attempts_failed", "ended_at", **_where(FAILED_OUTCOMES)),
)

quarantined_rows = sa.Table(
    "quarantined_rows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "job_id",
        sa.String(32),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The line in the file as an editor shows it: the header is line 1.
    sa.Column("row_number", sa.BigInteger, nullable=False),
    sa.Column("raw_row", JSONType, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="quarantined"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.UniqueConstraint("job_id", "row_number"),
    sa.CheckConstraint("status IN ('quarantined', 'loaded', 'duplicate')", name="status"),
    sa.Index("ix_quarantined_rows_created_at", "created_at"),
    sa.Index("ix_quarantined_rows_waiting", "job_id", **_where("status = 'quarantined'")),
    # Newest-first pages of failed rows (migration 0010): a load's rows share one created_at.
    sa.Index("ix_quarantined_rows_created_id", "created_at", "id"),
)

# Quarantined rows per status, kept by triggers on `quarantined_rows` (migration 0010): the
# open rows of a 10,000,000-row quarantine are one row here, not an index scan.
quarantined_row_counts = sa.Table(
    "quarantined_row_counts",
    metadata,
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
)


def completed_job_ids() -> sa.Subquery:
    """Ids of every completed job, in the ledger or pruned from it (column `job_id`): the
    jobs whose warehouse rows count."""
    return sa.union_all(
        sa.select(jobs.c.job_id).where(jobs.c.status == "completed"),
        sa.select(pruned_jobs.c.job_id).where(pruned_jobs.c.status == "completed"),
    ).subquery("completed_jobs")
