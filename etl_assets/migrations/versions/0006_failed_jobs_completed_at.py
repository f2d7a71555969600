"""Failed jobs get completed_at, like completed and cancelled ones.

Since 0003 a job that fails for good records when (completed_at): `etl prune` removes dead
letters by it, and the failure windows of the monitoring queries count by it. Jobs that failed
before then have none, so prune would keep them for ever: their last update is when they
failed (a failed job changes again only when retried, which makes it pending).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE jobs SET completed_at = updated_at WHERE status = 'failed' AND completed_at IS NULL"
    )


def downgrade() -> None:
    pass  # the times stay: they are true, and 0003's code reads them too
