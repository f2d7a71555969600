"""Downstream tables: daily_sales, customer_rfm, and the watermark of each.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 4, asdecimal=False)


def upgrade() -> None:
    op.create_table(
        "daily_sales",
        sa.Column("order_date", sa.Date, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("reporting_currency", sa.String(3), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("units", sa.BigInteger, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "order_date", "sku", "store_id", "reporting_currency", name="pk_daily_sales"
        ),
    )
    op.create_index("ix_daily_sales_sku", "daily_sales", ["sku"])
    op.create_table(
        "customer_rfm",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("last_order_date", sa.Date, nullable=False),
        sa.Column("frequency", sa.Integer, nullable=False),
        sa.Column("monetary", MONEY, nullable=False),
        sa.Column("reporting_currency", sa.String(3), nullable=False),
        sa.Column("recency_days", sa.Integer),
        sa.Column("r_score", sa.Integer),
        sa.Column("f_score", sa.Integer),
        sa.Column("m_score", sa.Integer),
        sa.Column("segment", sa.String(32)),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_rfm"),
    )
    op.create_index("ix_customer_rfm_segment", "customer_rfm", ["segment"])
    op.create_table(
        "downstream_watermarks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_downstream_watermarks"),
    )


def downgrade() -> None:
    op.drop_table("downstream_watermarks")
    op.drop_index("ix_customer_rfm_segment", table_name="customer_rfm")
    op.drop_table("customer_rfm")
    op.drop_index("ix_daily_sales_sku", table_name="daily_sales")
    op.drop_table("daily_sales")
