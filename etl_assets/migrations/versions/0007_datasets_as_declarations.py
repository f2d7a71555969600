"""Datasets as declarations: the customers dataset's table, customer profiles in dim_customer,
the dataset of each event, and the `bug` error type.

- `customer_records`: the rows of the customers dataset (one per customer, with lineage).
- `dim_customer` gets the profile columns (name, email, country, signup date); its order
  dates become optional, since a customer record may come before the customer's first order.
- `events.dataset`: the dataset of the job an event is about, so each downstream table takes
  only the loads of the datasets it consumes (index on topic, dataset, id); filled in from
  the payload for existing events.
- `jobs.error_type` may be `bug`: an unforeseen exception in code, not retried.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_ERROR_TYPES = "'transient', 'permanent', 'timeout', 'transient_exhausted'"
NEW_ERROR_TYPES = f"{OLD_ERROR_TYPES}, 'bug'"


def upgrade() -> None:
    op.create_table(
        "customer_records",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("signup_date", sa.Date, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("source_row", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_records"),
    )
    op.create_index("ix_customer_records_email", "customer_records", ["email"])
    op.create_index("ix_customer_records_job_id", "customer_records", ["job_id"])
    with op.batch_alter_table("dim_customer") as batch:
        batch.add_column(sa.Column("name", sa.String(200)))
        batch.add_column(sa.Column("email", sa.String(254)))
        batch.add_column(sa.Column("country", sa.String(2)))
        batch.add_column(sa.Column("signup_date", sa.Date))
        batch.alter_column("first_order_date", existing_type=sa.Date, nullable=True)
        batch.alter_column("last_order_date", existing_type=sa.Date, nullable=True)
    op.add_column("events", sa.Column("dataset", sa.String(64)))
    op.create_index("ix_events_topic_dataset_id", "events", ["topic", "dataset", "id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    payload_dataset = "payload->>'dataset'" if postgres else "json_extract(payload, '$.dataset')"
    op.execute(f"UPDATE events SET dataset = {payload_dataset} WHERE dataset IS NULL")
    _replace_error_types(OLD_ERROR_TYPES, NEW_ERROR_TYPES)


def downgrade() -> None:
    op.execute("UPDATE jobs SET error_type = 'permanent' WHERE error_type = 'bug'")
    _replace_error_types(NEW_ERROR_TYPES, OLD_ERROR_TYPES)
    op.drop_index("ix_events_topic_dataset_id", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("dataset")
    op.execute("DELETE FROM dim_customer WHERE first_order_date IS NULL OR last_order_date IS NULL")
    with op.batch_alter_table("dim_customer") as batch:
        batch.alter_column("first_order_date", existing_type=sa.Date, nullable=False)
        batch.alter_column("last_order_date", existing_type=sa.Date, nullable=False)
        for column in ("signup_date", "country", "email", "name"):
            batch.drop_column(column)
    op.drop_table("customer_records")


def _replace_error_types(old: str, new: str) -> None:
    """Swap the allowed values of jobs.error_type. On SQLite a CHECK constraint cannot be
    altered, and rebuilding `jobs` (batch mode) would drop its counting triggers and partial
    indexes; SQLite documents editing the table's definition in place for changes that no
    stored row can break (https://www.sqlite.org/lang_altertable.html, section 7), which an
    added value is, and a removed one is once no row holds it (the downgrade sees to that)."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("ck_jobs_error_type", "jobs", type_="check")
        op.create_check_constraint("ck_jobs_error_type", "jobs", f"error_type IN ({new})")
        return
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    changed = bind.execute(
        sa.text(
            "UPDATE sqlite_master SET sql = replace(sql, :old, :new) "
            "WHERE type = 'table' AND name = 'jobs' AND instr(sql, :old) > 0"
        ),
        {"old": f"error_type IN ({old})", "new": f"error_type IN ({new})"},
    ).rowcount
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    if changed != 1:
        raise RuntimeError("jobs.error_type's CHECK constraint is not the one expected")
