"""Events (an outbox: recorded with the change they describe) and their handler runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import JSONType, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, autoincrement=True),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(32)),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("dispatched_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_events_status"),
    )
    op.create_index("ix_events_topic_id", "events", ["topic", "id"])
    op.create_index("ix_events_status", "events", ["status"])
    op.create_index("ix_events_job_id", "events", ["job_id"])
    op.create_table(
        "event_handler_runs",
        sa.Column("id", ID, autoincrement=True),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("handler", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_handler_runs"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            ondelete="CASCADE",
            name="fk_event_handler_runs_event_id_events",
        ),
        sa.UniqueConstraint("event_id", "handler", name="uq_event_handler_runs_event_id_handler"),
        sa.CheckConstraint("status IN ('ok', 'failed')", name="ck_event_handler_runs_status"),
    )


def downgrade() -> None:
    op.drop_table("event_handler_runs")
    for index in ("ix_events_job_id", "ix_events_status", "ix_events_topic_id"):
        op.drop_index(index, table_name="events")
    op.drop_table("events")
