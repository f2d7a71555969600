"""Set-based, idempotent loads by natural key.

Fast path: a batch whose keys the warehouse does not hold yet (the usual first load of a
file) is written straight into the table (PostgreSQL: `COPY`; SQLite: one `executemany`)
inside a savepoint. If any key turns out to be there already, the savepoint is rolled back
and the batch takes the careful path: into a session-private staging table, then one
set-based upsert, the same SQL on both databases:

- a key the warehouse does not hold yet is inserted;
- a key whose row the warehouse holds with the same content (every column but the lineage)
  is left as it is: not rewritten, whichever job loaded it. A re-sent export or a corrected
  file costs writes only for the rows that changed; the unchanged row's lineage goes on
  naming the job that first loaded that content;
- a key loaded earlier by *another* job counts as a duplicate in this job; where the content
  differs, the later job (by job id, which sorts by creation time) wins: its values and its
  job_id replace an earlier job's row, and an earlier job loading late (a retry) leaves a
  later job's row alone;
- a key loaded earlier by *this* job from the same line (a retry or a resumed load) counts as
  loaded (its row is already what this line says);
- a key this job already loaded from an earlier line of its file is kept: the first line wins
  and the later one counts as a duplicate.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from etl_assets.datasets.base import JOB_ID, ROW_NUMBER, Dimension
from etl_assets.db import is_postgres
from etl_assets.ledger.dialect import dialect_insert


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
    dimensions: Sequence[Dimension] = (),
) -> UpsertCounts:
    """Load `frame` (columns of `table`, with job_id and source_row) into `table`.

    Runs in the caller's transaction, in which the dimension rows the fact rows imply
    (products, customers) are upserted too, after the facts (the order a load takes).
    """
    counts, first_lines = upsert_facts(conn, table, key, frame)
    upsert_dimensions(conn, dimensions, first_lines)
    return counts


def upsert_facts(
    conn: sa.Connection, table: sa.Table, key: Sequence[str], frame: pd.DataFrame
) -> tuple[UpsertCounts, pd.DataFrame]:
    """Load `frame`'s fact rows into `table` by natural key, in the caller's transaction
    (the rules in the module's docstring); touches no other table. Returns the counts and
    the rows offered: the first line of each natural key (a later line with the same key is
    a duplicate, and implies no dimension row of its own)."""
    unique = frame.drop_duplicates(subset=list(key), keep="first")
    if unique.empty:
        return UpsertCounts(0, 0), unique
    in_batch_duplicates = len(frame) - len(unique)
    columns = list(unique.columns)
    if _try_insert_new(conn, table, key, columns, unique):
        return UpsertCounts(loaded=len(unique), duplicate=in_batch_duplicates), unique
    stage = stage_rows(conn, table, unique).name
    if is_postgres(conn):
        already: int = conn.exec_driver_sql(
            _merge_sql(table.name, stage, key, columns)
        ).scalar_one()
    else:
        already = conn.exec_driver_sql(_duplicates_sql(table.name, stage, key)).scalar_one()
        conn.exec_driver_sql(_upsert_sql(table.name, stage, key, columns))
    counts = UpsertCounts(
        loaded=len(unique) - int(already), duplicate=int(already) + in_batch_duplicates
    )
    return counts, unique


def upsert_dimensions(
    conn: sa.Connection, dimensions: Sequence[Dimension], frame: pd.DataFrame
) -> None:
    """Upsert the dimension rows `frame`'s fact rows imply, in the caller's transaction."""
    if frame.empty:
        return
    job_id = str(frame[JOB_ID].iat[0])
    for dimension in dimensions:
        upsert_dimension(conn, dimension, dimension.rows(frame, job_id))


def upsert_dimension(conn: sa.Connection, dimension: Dimension, rows: pd.DataFrame) -> None:
    """Insert `rows` into the dimension's table; where the key exists, apply the dimension's
    updates if they change the row (a job's later chunks mostly name the same products and
    customers: rewriting them unchanged costs a new row version each, about 0.3 s per 1M
    fact rows). One staged statement per table: about 16 ms per 25,000-row chunk, where one
    parameter set per row cost up to 1.5 s per 50,000 rows of new customers."""
    if rows.empty:
        return
    table = dimension.table
    stage = stage_rows(conn, table, rows)
    insert = dialect_insert(conn, table)
    # In key order: concurrent loads then lock dimension rows in one order and cannot
    # deadlock (unordered, two jobs sharing products deadlocked about once in 30 jobs on 2
    # workers). WHERE true keeps SQLite from reading ON CONFLICT as a join constraint.
    select = sa.select(*stage.c).where(sa.true()).order_by(stage.c[dimension.key])
    statement = insert.from_select(list(rows.columns), select)
    assignments = dict(dimension.updates(table, statement.excluded))
    # IS DISTINCT FROM: a value first known now (the column was NULL) is a change too.
    changes = sa.or_(
        *(table.c[name].is_distinct_from(value) for name, value in assignments.items())
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[dimension.key], set_=assignments, where=changes
        )
    )


def _try_insert_new(
    conn: sa.Connection,
    table: sa.Table,
    key: Sequence[str],
    columns: list[str],
    rows: pd.DataFrame,
) -> bool:
    """Write `rows` straight into `table` if none of their keys is there; True if done.

    A probe of the first key skips the attempt for batches that are plainly reloads (a
    retry, a resumed job); the savepoint makes the attempt exact for the rest.
    """
    first = {k: rows[k].iat[0] for k in key}
    probe = sa.select(sa.literal(1)).where(*(table.c[k] == v for k, v in first.items()))
    if conn.execute(probe).first() is not None:
        return False
    try:
        with conn.begin_nested():
            _write(conn, table.name, columns, rows)
    except sa.exc.IntegrityError:
        return False  # some key is loaded already: the careful path sorts it out
    return True


def _write(conn: sa.Connection, target: str, columns: list[str], rows: pd.DataFrame) -> None:
    if is_postgres(conn):
        statement = f"COPY {target} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
        _with_raw_cursor(
            conn,
            statement,
            lambda cursor: cursor.copy_expert(statement, CsvStream(rows), size=COPY_READ_BYTES),
        )
    else:
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {target} ({', '.join(columns)}) VALUES ({placeholders})"
        _with_raw_cursor(
            conn, statement, lambda cursor: cursor.executemany(statement, python_rows(rows))
        )


def stage_rows(conn: sa.Connection, table: sa.Table, rows: pd.DataFrame) -> sa.TableClause:
    """Write `rows` (columns of `table`) into the session's empty staging table of `table`;
    returns it, to select from in one set-based statement."""
    stage = stage_table_name(table)
    _prepare_stage(conn, table, stage)
    _write(conn, stage, list(rows.columns), rows)
    return sa.table(stage, *(sa.column(name) for name in rows.columns))


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


def _with_raw_cursor(conn: sa.Connection, statement: str, call: Callable[[Any], object]) -> None:
    """`call(cursor)` on a DBAPI cursor of `conn` (in its transaction), for what SQLAlchemy
    cannot stream: COPY from a file-like object, executemany over an iterator."""
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        call(cursor)
    except dbapi.Error as exc:
        # The raw driver call bypasses SQLAlchemy: wrap its error the way SQLAlchemy would
        # (IntegrityError, OperationalError...), so callers and error classes see one kind.
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, dbapi.Error, dialect=conn.dialect
        ) from exc
    finally:
        cursor.close()


# Rows formatted (or converted) at a time: a slice's copies stay a few MB whatever the chunk.
SLICE_ROWS = 5_000
COPY_READ_BYTES = 1 << 20


class CsvStream(io.RawIOBase):
    """`frame` as headerless CSV for COPY, formatted slice by slice as COPY reads it.

    Arrow's C++ writer formats the values: DataFrame.to_csv formats each value in Python
    (1.3-1.6 s per 100k fact rows, floats the dearest), Arrow in about 0.05 s. Formatting a
    slice at a time keeps one slice's text in memory, not the whole chunk's (about 50 MB
    per 100k fact rows). The frame becomes an Arrow table once, and the slices are views of
    it: its string columns are Arrow already and its numbers are shared, so the table costs
    little memory, where converting each 5,000-row slice on its own cost 0.3 ms per column
    and slice, about 1 s of a 1,000,000-row load. Nulls become unquoted empty fields, which
    COPY reads as NULL.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__()
        table = arrow_table(frame)
        self._texts = (
            _table_csv(table.slice(start, SLICE_ROWS))
            for start in range(0, table.num_rows, SLICE_ROWS)
        )
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` with the next bytes of CSV; 0 at the end."""
        while not self._pending:
            text = next(self._texts, None)
            if text is None:
                return 0
            self._pending = memoryview(text)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """`frame` as headerless CSV, formatted by Arrow's C++ writer."""
    return _table_csv(arrow_table(frame))


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table, without its index."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def _table_csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def python_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """`frame`'s rows as tuples of Python values (what sqlite3 binds), a slice at a time."""
    for piece in _slices(frame):
        # Series.tolist gives Python values: 40 % faster than astype(object) + itertuples.
        yield from zip(*(piece[column].tolist() for column in piece.columns), strict=True)


def _slices(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """`frame`, SLICE_ROWS rows at a time."""
    for start in range(0, len(frame), SLICE_ROWS):
        yield frame.iloc[start : start + SLICE_ROWS]


def _duplicates_sql(target: str, stage: str, key: Sequence[str]) -> str:
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return (
        f"SELECT count(*) FROM {stage} s JOIN {target} t ON {on} "
        "WHERE NOT (t.job_id = s.job_id AND t.source_row = s.source_row)"
    )


def _upsert_sql(target: str, stage: str, key: Sequence[str], columns: Sequence[str]) -> str:
    """Write the staged rows the warehouse does not hold with this content (SQLite)."""
    names = ", ".join(columns)
    # Rows whose content the warehouse already holds are not even offered to ON CONFLICT:
    # DO UPDATE locks (and so writes) every conflicting row, even where its WHERE is false.
    return (
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {_same_row(key, columns)}) "
        f"{_on_conflict(target, key, columns)}"
    )


def _merge_sql(target: str, stage: str, key: Sequence[str], columns: Sequence[str]) -> str:
    """`_duplicates_sql` and `_upsert_sql` in one statement, one index probe per staged row
    where those take two (PostgreSQL: a data-modifying CTE); returns the duplicate count."""
    names = ", ".join(columns)
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return (
        f"WITH matched AS MATERIALIZED (SELECT s.*, t.job_id AS held_job, "
        f"t.source_row AS held_row, (t.{key[0]} IS NOT NULL AND {_same_content(columns, key)})"
        f" AS unchanged FROM {stage} s LEFT JOIN {target} t ON {on}), "
        f"written AS (INSERT INTO {target} ({names}) SELECT {names} FROM matched "
        f"WHERE NOT unchanged {_on_conflict(target, key, columns)}) "
        "SELECT count(*) FROM matched WHERE held_job IS NOT NULL "
        "AND NOT (held_job = job_id AND held_row = source_row)"
    )


def _same_row(key: Sequence[str], columns: Sequence[str]) -> str:
    """SQL: row t of the target holds staged row s's key and content."""
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    return f"{on} AND {_same_content(columns, key)}"


def _same_content(columns: Sequence[str], key: Sequence[str]) -> str:
    """SQL: rows t and s agree on every column but the key and the lineage."""
    lineage = {JOB_ID, ROW_NUMBER}
    return " AND ".join(
        f"t.{c} IS NOT DISTINCT FROM s.{c}" for c in columns if c not in key and c not in lineage
    )


def _on_conflict(target: str, key: Sequence[str], columns: Sequence[str]) -> str:
    """The upsert's conflict rule: a later job's row replaces an earlier job's, and a line
    rewrites the row it loaded itself; anything else is left (a duplicate)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        f"WHERE {target}.job_id < excluded.job_id "
        f"OR ({target}.job_id = excluded.job_id AND {target}.source_row = excluded.source_row)"
    )
