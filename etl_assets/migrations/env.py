"""Alembic environment: runs migrations on the engine handed in by etl_assets.migrations."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from etl_assets.db import UTCDateTime
from etl_assets.schema import metadata

engine = context.config.attributes["engine"]

# Alembic cannot compare an index on an expression (priority DESC): autogenerate would drop
# and recreate it in every new revision.
EXPRESSION_INDEXES = {"ix_jobs_status_priority_created"}


def comparable(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    """What autogenerate compares: everything but the expression indexes."""
    return not (kind == "index" and name in EXPRESSION_INDEXES)


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """How autogenerate writes the project's own column types: by name, with their import
    (alembic's default would name their module without importing it)."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from etl_assets.db import UTCDateTime")
        return "UTCDateTime"
    return False


with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite needs batch mode
        include_object=comparable,
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
