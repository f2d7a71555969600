"""Alembic environment: runs migrations on the engine handed in by etl_assets.migrations."""

from __future__ import annotations

from alembic import context

from etl_assets.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite needs batch mode
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
