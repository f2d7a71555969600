"""Quarantined rows remember whether a retry loaded them (status, resolved_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_rows") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="quarantined")
        )
        batch.add_column(sa.Column("resolved_at", UTCDateTime))
        batch.create_check_constraint(
            "ck_quarantined_rows_status", "status IN ('quarantined', 'loaded', 'duplicate')"
        )


def downgrade() -> None:
    with op.batch_alter_table("quarantined_rows") as batch:
        batch.drop_constraint("ck_quarantined_rows_status", type_="check")
        batch.drop_column("resolved_at")
        batch.drop_column("status")
