"""The jobs ledger (jobs, job_attempts, quarantined_rows) and the sales warehouse.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "'pending', 'processing', 'completed', 'failed', 'cancelled'"
ERROR_TYPES = "'transient', 'permanent', 'timeout', 'transient_exhausted'"
OUTCOMES = "'running', 'succeeded', 'failed', 'timed_out', 'cancelled'"
MONEY = sa.Numeric(18, 4, asdecimal=False)


def upgrade() -> None:
    op.create_table(
        "jobs",
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
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
        sa.UniqueConstraint("dataset", "content_sha256", name="uq_jobs_dataset_content_sha256"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_jobs_status"),
        sa.CheckConstraint(f"error_type IN ({ERROR_TYPES})", name="ck_jobs_error_type"),
        sa.CheckConstraint(
            "attempts >= 0 AND retry_count >= 0 AND retry_count <= attempts "
            "AND attempts <= max_attempts",
            name="ck_jobs_attempts",
        ),
    )
    op.create_index(
        "ix_jobs_status_priority_created",
        "jobs",
        ["status", sa.text("priority DESC"), "created_at"],
    )
    op.create_index("ix_jobs_completed_at", "jobs", ["completed_at"])
    op.create_index("ix_jobs_status_heartbeat", "jobs", ["status", "last_heartbeat_at"])
    op.create_index("ix_jobs_run_id", "jobs", ["run_id"])

    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(32)),
        sa.Column("error_message", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_job_attempts"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], ondelete="CASCADE", name="fk_job_attempts_job_id_jobs"
        ),
        sa.UniqueConstraint("job_id", "attempt", name="uq_job_attempts_job_id_attempt"),
        sa.CheckConstraint(f"outcome IN ({OUTCOMES})", name="ck_job_attempts_outcome"),
    )

    op.create_table(
        "quarantined_rows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("row_number", sa.BigInteger, nullable=False),
        sa.Column("raw_row", JSONType, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantined_rows"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], ondelete="CASCADE", name="fk_quarantined_rows_job_id_jobs"
        ),
        sa.UniqueConstraint("job_id", "row_number", name="uq_quarantined_rows_job_id_row_number"),
    )
    op.create_index("ix_quarantined_rows_created_at", "quarantined_rows", ["created_at"])

    op.create_table(
        "sales_fact",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("order_date", sa.Date, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("fx_rate", sa.Float, nullable=False),
        sa.Column("fx_date", sa.Date, nullable=False),
        sa.Column("amount_reporting", MONEY, nullable=False),
        sa.Column("reporting_currency", sa.String(3), nullable=False),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("source_row", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("order_id", "sku", name="pk_sales_fact"),
    )
    op.create_index("ix_sales_fact_job_id", "sales_fact", ["job_id"])
    op.create_index("ix_sales_fact_order_date", "sales_fact", ["order_date"])

    op.create_table(
        "dim_product",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("last_job_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("sku", name="pk_dim_product"),
    )
    op.create_table(
        "dim_customer",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("first_order_date", sa.Date, nullable=False),
        sa.Column("last_order_date", sa.Date, nullable=False),
        sa.Column("first_job_id", sa.String(32), nullable=False),
        sa.Column("last_job_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_dim_customer"),
    )


def downgrade() -> None:
    for table in ("dim_customer", "dim_product", "sales_fact"):
        op.drop_table(table)
    op.drop_index("ix_quarantined_rows_created_at", table_name="quarantined_rows")
    op.drop_table("quarantined_rows")
    op.drop_table("job_attempts")
    for index in (
        "ix_jobs_run_id",
        "ix_jobs_status_heartbeat",
        "ix_jobs_completed_at",
        "ix_jobs_status_priority_created",
    ):
        op.drop_index(index, table_name="jobs")
    op.drop_table("jobs")
