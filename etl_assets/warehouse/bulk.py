"""Set-based, idempotent loads: rows go to a staging table, then one upsert by natural key.

On PostgreSQL the staging table is filled with `COPY`; on SQLite with one `executemany`.
The upsert is the same SQL on both:

- a key the warehouse does not hold yet is inserted;
- a key loaded earlier by *another* job is replaced: the later job wins, and the row counts as
  a duplicate in this job;
- a key loaded earlier by *this* job from the same line (a retry or a resumed load) is
  rewritten with the same values: idempotent, counted as loaded;
- a key this job already loaded from an earlier line of its file is kept: the first line wins
  and the later one counts as a duplicate.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from etl_assets.db import is_postgres


@dataclass(frozen=True)
class UpsertCounts:
    """What one staged batch did to the warehouse."""

    loaded: int
    duplicate: int


def stage_table_name(table: sa.Table) -> str:
    """The session-private staging table of `table`."""
    return f"_stage_{table.name}"


def upsert_rows(
    conn: sa.Connection,
    table: sa.Table,
    key: Sequence[str],
    frame: pd.DataFrame,
    *,
    after_stage: Callable[[sa.Connection, str], None] | None = None,
) -> UpsertCounts:
    """Load `frame` (columns of `table`, with job_id and source_row) into `table`.

    Runs in the caller's transaction. `after_stage(conn, stage_table)` may read the staged
    rows before they are merged (to update dimensions in the same transaction).
    """
    if frame.empty:
        return UpsertCounts(0, 0)
    unique = frame.drop_duplicates(subset=list(key), keep="first")
    in_batch_duplicates = len(frame) - len(unique)
    stage = stage_table_name(table)
    columns = list(unique.columns)
    _prepare_stage(conn, table, stage)
    if is_postgres(conn):
        _copy_into(conn, stage, columns, unique)
    else:
        _insert_into(conn, stage, columns, unique)
    if after_stage is not None:
        after_stage(conn, stage)
    already: int = conn.exec_driver_sql(_duplicates_sql(table.name, stage, key)).scalar_one()
    conn.exec_driver_sql(_upsert_sql(table.name, stage, key, columns))
    return UpsertCounts(
        loaded=len(unique) - int(already), duplicate=int(already) + in_batch_duplicates
    )


def _prepare_stage(conn: sa.Connection, table: sa.Table, stage: str) -> None:
    if is_postgres(conn):
        # LIKE copies column types but no keys: the staging table accepts any batch.
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name} INCLUDING DEFAULTS)"
        )
        conn.exec_driver_sql(f"TRUNCATE {stage}")
    else:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT * FROM main.{table.name} WHERE 0"
        )
        conn.exec_driver_sql(f"DELETE FROM {stage}")


def _copy_into(conn: sa.Connection, stage: str, columns: list[str], frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {stage} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer
        )
    finally:
        cursor.close()


def _insert_into(conn: sa.Connection, stage: str, columns: list[str], frame: pd.DataFrame) -> None:
    placeholders = ", ".join("?" for _ in columns)
    rows = list(frame.astype(object).itertuples(index=False, name=None))
    conn.exec_driver_sql(
        f"INSERT INTO {stage} ({', '.join(columns)}) VALUES ({placeholders})", rows
    )


def _duplicates_sql(target: str, stage: str, key: Sequence[str]) -> str:
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return (
        f"SELECT count(*) FROM {stage} s JOIN {target} t ON {on} "
        "WHERE NOT (t.job_id = s.job_id AND t.source_row = s.source_row)"
    )


def _upsert_sql(target: str, stage: str, key: Sequence[str], columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    # "WHERE true" keeps SQLite's parser from reading ON CONFLICT as a join constraint.
    return (
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} WHERE true "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        f"WHERE {target}.job_id <> excluded.job_id OR {target}.source_row = excluded.source_row"
    )
