"""Statements whose SQL differs between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from etl_assets.db import is_postgres


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    if is_postgres(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)
