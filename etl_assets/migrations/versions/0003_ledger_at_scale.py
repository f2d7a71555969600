"""The ledger at a million jobs: status counts kept by triggers, indexes for newest-first
listings, and tombstones of pruned jobs; each attempt records the worker that ran it.

Counting jobs per status is a scan of the whole table, about 100 ms at 1,000,000 jobs; the
`job_status_counts` table answers it in well under a millisecond. Triggers keep it true
whatever changes `jobs` (the ledger, `etl prune`, an operator's SQL): on PostgreSQL one
statement-level trigger per operation that applies each statement's net change, locking the
counter rows in one order (dataset, status) so two transactions cannot deadlock on them; on
SQLite row triggers (one writer at a time).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Net change of one statement per (dataset, status), applied in a fixed order.
_APPLY_CHANGES = """
    FOR change IN
        SELECT dataset, status, sum(delta) AS delta FROM ({changes}) AS c
        GROUP BY dataset, status HAVING sum(delta) <> 0 ORDER BY dataset, status
    LOOP
        INSERT INTO job_status_counts AS counts (dataset, status, jobs)
        VALUES (change.dataset, change.status, change.delta)
        ON CONFLICT (dataset, status) DO UPDATE SET jobs = counts.jobs + EXCLUDED.jobs;
    END LOOP;
"""
_CHANGES = {
    "INSERT": "SELECT dataset, status, 1 AS delta FROM new_rows",
    "DELETE": "SELECT dataset, status, -1 AS delta FROM old_rows",
    "UPDATE": "SELECT dataset, status, 1 AS delta FROM new_rows "
    "UNION ALL SELECT dataset, status, -1 AS delta FROM old_rows",
}
_TRANSITION_TABLES = {
    "INSERT": "NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_status_counts (dataset, status, jobs) VALUES (NEW.dataset, NEW.status, 1)
        ON CONFLICT (dataset, status) DO UPDATE SET jobs = jobs + 1;
    END""",
    """CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_status_counts SET jobs = jobs - 1
        WHERE dataset = OLD.dataset AND status = OLD.status;
    END""",
    """CREATE TRIGGER jobs_count_update AFTER UPDATE OF status, dataset ON jobs
    WHEN OLD.status <> NEW.status OR OLD.dataset <> NEW.dataset BEGIN
        UPDATE job_status_counts SET jobs = jobs - 1
        WHERE dataset = OLD.dataset AND status = OLD.status;
        INSERT INTO job_status_counts (dataset, status, jobs) VALUES (NEW.dataset, NEW.status, 1)
        ON CONFLICT (dataset, status) DO UPDATE SET jobs = jobs + 1;
    END""",
]

NEW_INDEXES = {
    # Newest-first listings, overall and per status / dataset (etl jobs list, the ops API).
    "ix_jobs_created_at": ["created_at"],
    "ix_jobs_status_created": ["status", "created_at"],
    "ix_jobs_dataset_created": ["dataset", "created_at"],
    # Recent failures and retention work by status and finish time.
    "ix_jobs_status_completed": ["status", "completed_at"],
}


PARTIAL_INDEXES = {  # name: (table, columns, condition)
    "ix_jobs_retried": ("jobs", ["created_at"], "retry_count > 0"),
    "ix_job_attempts_failed": ("job_attempts", ["ended_at"], "outcome IN ('failed', 'timed_out')"),
    "ix_quarantined_rows_waiting": ("quarantined_rows", ["job_id"], "status = 'quarantined'"),
}


def upgrade() -> None:
    op.create_table(
        "job_status_counts",
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("jobs", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("dataset", "status", name="pk_job_status_counts"),
    )
    op.create_table(
        "pruned_jobs",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completed_at", UTCDateTime),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False),
        sa.Column("pruned_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_pruned_jobs"),
    )
    with op.batch_alter_table("job_attempts") as batch:
        batch.add_column(sa.Column("worker", sa.String(255)))
    op.execute(
        "INSERT INTO job_status_counts (dataset, status, jobs) "
        "SELECT dataset, status, count(*) FROM jobs GROUP BY dataset, status"
    )
    if op.get_bind().dialect.name == "postgresql":
        for operation, changes in _CHANGES.items():
            name = f"jobs_count_{operation.lower()}"
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"DECLARE change record;\nBEGIN{_APPLY_CHANGES.format(changes=changes)}"
                f"    RETURN NULL;\nEND $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} AFTER {operation} ON jobs "
                f"REFERENCING {_TRANSITION_TABLES[operation]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, "jobs", columns)
    for name, (table, columns, condition) in PARTIAL_INDEXES.items():
        where = sa.text(condition)
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, (table, _, _) in PARTIAL_INDEXES.items():
        op.drop_index(name, table)
    for name in NEW_INDEXES:
        op.drop_index(name, "jobs")
    postgres = op.get_bind().dialect.name == "postgresql"
    for operation in _CHANGES:
        name = f"jobs_count_{operation.lower()}"
        op.execute(f"DROP TRIGGER {name} ON jobs" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("pruned_jobs")
    op.drop_table("job_status_counts")
    with op.batch_alter_table("job_attempts") as batch:
        batch.drop_column("worker")
