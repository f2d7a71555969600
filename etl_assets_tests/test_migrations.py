"""The alembic migrations create exactly the schema the code describes, on both databases."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from etl_assets import migrations
from etl_assets.db import create_engine, metadata

# Alembic cannot compare an index with an expression (priority DESC); checked by name below.
CLAIM_INDEX = "ix_jobs_status_priority_created"


def test_migrated_schema_matches_the_models(engine: sa.Engine) -> None:
    def comparable(obj: object, name: str | None, kind: str, *_: object) -> bool:
        return not (kind == "index" and name == CLAIM_INDEX)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": comparable}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("jobs")}
    assert CLAIM_INDEX in indexes
    assert migrations.current_revision(engine) == migrations.head_revision()


def test_upgrade_from_nothing_and_downgrade_to_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert migrations.current_revision(engine) is None
    migrations.upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"jobs", "job_attempts", "quarantined_rows", "sales_fact"} <= tables
    migrations.upgrade(engine)  # idempotent
    migrations.downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_jobs_that_failed_before_0006_get_their_completed_at(tmp_path: Path) -> None:
    # Without it, etl prune (which goes by completed_at) would never remove them.
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrations.upgrade(engine, "0005")
    failed_at = "2026-10-01 08:00:00.000000"
    with engine.begin() as conn:
        for job_id, status in (("old_dead", "failed"), ("waiting", "pending")):
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (job_id, title, dataset, source_uri, source_name, "
                    "content_sha256, size_bytes, status, attempts, max_attempts, created_at, "
                    "updated_at) VALUES (:id, :id, 'sales', '/x', 'x.csv', :sha, 1, :status, "
                    "1, 3, :at, :at)"
                ),
                {"id": job_id, "sha": job_id.ljust(64, "0"), "status": status, "at": failed_at},
            )
    migrations.upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT job_id, completed_at FROM jobs")).all())
    assert rows == {"old_dead": failed_at, "waiting": None}
    engine.dispose()
