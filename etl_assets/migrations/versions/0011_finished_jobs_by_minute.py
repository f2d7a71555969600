"""The finished jobs' figures per minute, kept by triggers: the operators' windowed figures
(the metrics' window, the dashboard's buckets) without reading each job of the window.

`job_finished_minutes` (minute, status): for each minute (UTC, by `completed_at`) and final
status (completed, failed), how many jobs finished, the rows they loaded, how many of them
have a start (`timed_jobs`) and the milliseconds those ran from the start of their last
attempt (`work_ms`), and how many failed out of attempts (`exhausted`). A day of the
metrics is ~1,440 of these rows instead of ~11,000 index entries at a million jobs over 90
days, and the dashboard's buckets group them instead of bucketing each job.

On PostgreSQL one statement-level trigger per operation on `jobs` applies the statement's
net change (transition tables, as 0003 and 0010 keep their counts), to rows locked in
(minute, status) order; a statement that changes none of these figures (a heartbeat) writes
nothing. On SQLite, the embedded default of a few thousand jobs, the table stays empty and
the read model reads the jobs themselves.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from etl_assets.db import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# One row's contribution, for a job that finished (completed or failed, with a completed_at).
_FIGURES = """
    SELECT date_trunc('minute', completed_at, 'UTC') AS minute, status,
        {sign} AS jobs,
        {sign} * coalesce(rows_loaded, 0) AS rows_loaded,
        {sign} * (started_at IS NOT NULL)::int AS timed_jobs,
        {sign} * coalesce(round(1000 * (date_part('epoch', completed_at)
            - date_part('epoch', started_at)))::bigint, 0) AS work_ms,
        {sign} * (error_type IS NOT DISTINCT FROM 'transient_exhausted')::int AS exhausted
    FROM {rows} WHERE status IN ('completed', 'failed') AND completed_at IS NOT NULL
"""
_CHANGES = {
    "INSERT": _FIGURES.format(sign=1, rows="new_rows"),
    "DELETE": _FIGURES.format(sign=-1, rows="old_rows"),
    "UPDATE": _FIGURES.format(sign=1, rows="new_rows")
    + " UNION ALL "
    + _FIGURES.format(sign=-1, rows="old_rows"),
}
_TRANSITION_TABLES = {
    "INSERT": "NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}
# The statement's net change per (minute, status), applied in that order (no deadlock
# between two transactions that both change several minutes).
_APPLY_CHANGES = """
    FOR change IN
        SELECT minute, status, sum(jobs) AS jobs, sum(rows_loaded) AS rows_loaded,
            sum(timed_jobs) AS timed_jobs, sum(work_ms) AS work_ms, sum(exhausted) AS exhausted
        FROM ({changes}) AS c
        GROUP BY minute, status
        HAVING sum(jobs) <> 0 OR sum(rows_loaded) <> 0 OR sum(timed_jobs) <> 0
            OR sum(work_ms) <> 0 OR sum(exhausted) <> 0
        ORDER BY minute, status
    LOOP
        INSERT INTO job_finished_minutes AS m
            (minute, status, jobs, rows_loaded, timed_jobs, work_ms, exhausted)
        VALUES (change.minute, change.status, change.jobs, change.rows_loaded,
            change.timed_jobs, change.work_ms, change.exhausted)
        ON CONFLICT (minute, status) DO UPDATE SET
            jobs = m.jobs + EXCLUDED.jobs,
            rows_loaded = m.rows_loaded + EXCLUDED.rows_loaded,
            timed_jobs = m.timed_jobs + EXCLUDED.timed_jobs,
            work_ms = m.work_ms + EXCLUDED.work_ms,
            exhausted = m.exhausted + EXCLUDED.exhausted;
    END LOOP;
"""


def upgrade() -> None:
    op.create_table(
        "job_finished_minutes",
        sa.Column("minute", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("jobs", sa.BigInteger, nullable=False),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False),
        sa.Column("timed_jobs", sa.BigInteger, nullable=False),
        sa.Column("work_ms", sa.BigInteger, nullable=False),
        sa.Column("exhausted", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("minute", "status", name="pk_job_finished_minutes"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "INSERT INTO job_finished_minutes "
        "(minute, status, jobs, rows_loaded, timed_jobs, work_ms, exhausted) "
        "SELECT minute, status, sum(jobs), sum(rows_loaded), sum(timed_jobs), sum(work_ms), "
        f"sum(exhausted) FROM ({_FIGURES.format(sign=1, rows='jobs')}) AS f "
        "GROUP BY minute, status"
    )
    # Statistics now, not at autovacuum's next pass: without them the planner takes the
    # backfilled table for a small one and scans all of it for a day's minutes.
    op.execute("ANALYZE job_finished_minutes")
    for operation, changes in _CHANGES.items():
        name = f"jobs_finished_minutes_{operation.lower()}"
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


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for operation in _CHANGES:
            name = f"jobs_finished_minutes_{operation.lower()}"
            op.execute(f"DROP TRIGGER {name} ON jobs")
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("job_finished_minutes")
