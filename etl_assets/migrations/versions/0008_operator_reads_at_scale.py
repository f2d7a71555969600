"""The operators' reads at a million jobs: quarantined rows counted by trigger, and indexes so
every list the ops API, the dashboard and the CLI page through is read in index order.

- `quarantined_row_counts` (status, rows): rows per quarantine status, kept by triggers on
  `quarantined_rows` the way 0003 keeps `job_status_counts` (statement-level triggers with
  transition tables on PostgreSQL, row triggers on SQLite). Counting the open rows of a
  10,000,000-row quarantine is a scan of ~10 M index entries (seconds); this is one row.
- Keyset indexes `(sort column, job_id)` for each order `list_jobs` offers, so a page is the
  next `limit` entries of one index whatever the page number; `(created_at, id)` likewise for
  the failed rows (a load's rows share one created_at, so the id must be in the index).
- `ix_jobs_status_completed_figures`: the windowed figures (completed in the window, rows
  loaded, mean duration) read from the index alone, without visiting ~10,000 heap rows.
- `ix_jobs_retry_count`: the retry statistics read from the ~5% of jobs that were retried.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Net change of one statement per status, applied in a fixed order (no deadlock between
# two transactions that both change several statuses).
_APPLY_CHANGES = """
    FOR change IN
        SELECT status, sum(delta) AS delta FROM ({changes}) AS c
        GROUP BY status HAVING sum(delta) <> 0 ORDER BY status
    LOOP
        INSERT INTO quarantined_row_counts AS counts (status, rows)
        VALUES (change.status, change.delta)
        ON CONFLICT (status) DO UPDATE SET rows = counts.rows + EXCLUDED.rows;
    END LOOP;
"""
_CHANGES = {
    "INSERT": "SELECT status, 1 AS delta FROM new_rows",
    "DELETE": "SELECT status, -1 AS delta FROM old_rows",
    "UPDATE": "SELECT status, 1 AS delta FROM new_rows "
    "UNION ALL SELECT status, -1 AS delta FROM old_rows",
}
_TRANSITION_TABLES = {
    "INSERT": "NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER quarantined_rows_count_insert AFTER INSERT ON quarantined_rows BEGIN
        INSERT INTO quarantined_row_counts (status, rows) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET rows = rows + 1;
    END""",
    """CREATE TRIGGER quarantined_rows_count_delete AFTER DELETE ON quarantined_rows BEGIN
        UPDATE quarantined_row_counts SET rows = rows - 1 WHERE status = OLD.status;
    END""",
    """CREATE TRIGGER quarantined_rows_count_update AFTER UPDATE OF status ON quarantined_rows
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE quarantined_row_counts SET rows = rows - 1 WHERE status = OLD.status;
        INSERT INTO quarantined_row_counts (status, rows) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET rows = rows + 1;
    END""",
]

INDEXES = {  # name: (table, columns)
    "ix_jobs_updated_job": ("jobs", ["updated_at", "job_id"]),
    "ix_jobs_completed_job": ("jobs", ["completed_at", "job_id"]),
    "ix_jobs_priority_job": ("jobs", ["priority", "job_id"]),
    "ix_jobs_status_job": ("jobs", ["status", "job_id"]),
    "ix_jobs_status_completed_figures": (
        "jobs",
        ["status", "completed_at", "started_at", "rows_loaded"],
    ),
    "ix_quarantined_rows_created_id": ("quarantined_rows", ["created_at", "id"]),
}
RETRIED = "retry_count > 0"


def upgrade() -> None:
    op.create_table(
        "quarantined_row_counts",
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("status", name="pk_quarantined_row_counts"),
    )
    op.execute(
        "INSERT INTO quarantined_row_counts (status, rows) "
        "SELECT status, count(*) FROM quarantined_rows GROUP BY status"
    )
    if op.get_bind().dialect.name == "postgresql":
        for operation, changes in _CHANGES.items():
            name = f"quarantined_rows_count_{operation.lower()}"
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"DECLARE change record;\nBEGIN{_APPLY_CHANGES.format(changes=changes)}"
                f"    RETURN NULL;\nEND $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} AFTER {operation} ON quarantined_rows "
                f"REFERENCING {_TRANSITION_TABLES[operation]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    where = sa.text(RETRIED)
    op.create_index(
        "ix_jobs_retry_count",
        "jobs",
        ["retry_count"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_retry_count", "jobs")
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table)
    postgres = op.get_bind().dialect.name == "postgresql"
    for operation in _CHANGES:
        name = f"quarantined_rows_count_{operation.lower()}"
        op.execute(
            f"DROP TRIGGER {name} ON quarantined_rows" if postgres else f"DROP TRIGGER {name}"
        )
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("quarantined_row_counts")
