"""The operators' reads at a million jobs: quarantined rows counted by trigger, and indexes so
every list the ops API, the dashboard and the CLI page through is read in index order.

- `quarantined_row_counts` (status, rows): rows per quarantine status, kept by triggers on
  `quarantined_rows` the way 0003 keeps `job_status_counts` (statement-level triggers with
  transition tables on PostgreSQL, row triggers on SQLite). Counting the open rows of a
  10,000,000-row quarantine is a scan of ~10 M index entries (seconds); this is one row.
- Keyset indexes `(sort column, job_id)` for each order `list_jobs` offers, so a page is the
  next `limit` entries of one index whatever the page number; `(created_at, id)` likewise for
  the failed rows (a load's rows share one created_at, so the id must be in the index).
- `ix_jobs_completed_figures` (completed_at first): the windowed figures (completed in the
  window, rows loaded, mean duration, the dashboard's buckets) read from the index alone.
  Led by status, PostgreSQL preferred `ix_jobs_completed_at` and ~11,000 heap visits (15 ms
  at a million jobs, against 3.5 ms index-only), since completed_at follows the heap order.
- `job_retry_totals` (one row): jobs retried and retries in all, kept by triggers on `jobs`
  (the statistics over every job were a walk over the ~5% of jobs that were retried, 50,000
  index entries at a million jobs); `ix_jobs_retry_count` answers the most retries of one
  job with one index entry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
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
    "ix_jobs_completed_figures": (
        "jobs",
        ["completed_at", "status", "started_at", "rows_loaded"],
    ),
    "ix_quarantined_rows_created_id": ("quarantined_rows", ["created_at", "id"]),
}
RETRIED = "retry_count > 0"

# The net change of one statement to (jobs retried, retries in all); no row is touched when
# the statement changed no retry_count (a heartbeat), so the single row is no hot spot.
_RETRY_DELTAS = {
    "INSERT": "SELECT count(*) FILTER (WHERE retry_count > 0) AS retried, "
    "coalesce(sum(retry_count), 0) AS total FROM new_rows",
    "DELETE": "SELECT -count(*) FILTER (WHERE retry_count > 0) AS retried, "
    "-coalesce(sum(retry_count), 0) AS total FROM old_rows",
    "UPDATE": "SELECT (SELECT count(*) FILTER (WHERE retry_count > 0) FROM new_rows) "
    "- (SELECT count(*) FILTER (WHERE retry_count > 0) FROM old_rows) AS retried, "
    "(SELECT coalesce(sum(retry_count), 0) FROM new_rows) "
    "- (SELECT coalesce(sum(retry_count), 0) FROM old_rows) AS total",
}
_APPLY_RETRY_DELTA = """
    SELECT * INTO change FROM ({delta}) AS d;
    IF change.retried <> 0 OR change.total <> 0 THEN
        INSERT INTO job_retry_totals AS totals (id, jobs_retried, total_retries)
        VALUES (1, change.retried, change.total)
        ON CONFLICT (id) DO UPDATE SET
            jobs_retried = totals.jobs_retried + EXCLUDED.jobs_retried,
            total_retries = totals.total_retries + EXCLUDED.total_retries;
    END IF;
"""
_SQLITE_RETRY_TRIGGERS = [
    """CREATE TRIGGER jobs_retries_insert AFTER INSERT ON jobs WHEN NEW.retry_count > 0 BEGIN
        INSERT INTO job_retry_totals (id, jobs_retried, total_retries)
        VALUES (1, 1, NEW.retry_count)
        ON CONFLICT (id) DO UPDATE SET jobs_retried = jobs_retried + 1,
            total_retries = total_retries + NEW.retry_count;
    END""",
    """CREATE TRIGGER jobs_retries_delete AFTER DELETE ON jobs WHEN OLD.retry_count > 0 BEGIN
        UPDATE job_retry_totals SET jobs_retried = jobs_retried - 1,
            total_retries = total_retries - OLD.retry_count WHERE id = 1;
    END""",
    """CREATE TRIGGER jobs_retries_update AFTER UPDATE OF retry_count ON jobs
    WHEN OLD.retry_count <> NEW.retry_count BEGIN
        INSERT INTO job_retry_totals (id, jobs_retried, total_retries)
        VALUES (1, (NEW.retry_count > 0) - (OLD.retry_count > 0),
            NEW.retry_count - OLD.retry_count)
        ON CONFLICT (id) DO UPDATE SET
            jobs_retried = jobs_retried + (NEW.retry_count > 0) - (OLD.retry_count > 0),
            total_retries = total_retries + NEW.retry_count - OLD.retry_count;
    END""",
]


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
    op.create_table(
        "job_retry_totals",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("jobs_retried", sa.BigInteger, nullable=False),
        sa.Column("total_retries", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_retry_totals"),
    )
    op.execute(
        "INSERT INTO job_retry_totals (id, jobs_retried, total_retries) "
        "SELECT 1, count(*), coalesce(sum(retry_count), 0) FROM jobs WHERE retry_count > 0"
    )
    if op.get_bind().dialect.name == "postgresql":
        for operation, delta in _RETRY_DELTAS.items():
            name = f"jobs_retries_{operation.lower()}"
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"DECLARE change record;\nBEGIN{_APPLY_RETRY_DELTA.format(delta=delta)}"
                f"    RETURN NULL;\nEND $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} AFTER {operation} ON jobs "
                f"REFERENCING {_TRANSITION_TABLES[operation]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
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
        for trigger in [*_SQLITE_TRIGGERS, *_SQLITE_RETRY_TRIGGERS]:
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
    for operation in _RETRY_DELTAS:
        name = f"jobs_retries_{operation.lower()}"
        op.execute(f"DROP TRIGGER {name} ON jobs" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("job_retry_totals")
    for operation in _CHANGES:
        name = f"quarantined_rows_count_{operation.lower()}"
        op.execute(
            f"DROP TRIGGER {name} ON quarantined_rows" if postgres else f"DROP TRIGGER {name}"
        )
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("quarantined_row_counts")
