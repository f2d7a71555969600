"""Chunks written ahead on a second connection, committed in order (warehouse/write_ahead.py).

The chunks here are (name, key, delay) triples written into a small keyed table; the writes
are real statements on real connections, so what one chunk's open transaction holds is what
the next one meets. Writing ahead is PostgreSQL's (SQLite takes one writer at a time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from etl_assets.warehouse import write_ahead
from etl_assets.warehouse.write_ahead import ChunkWrites

Chunk = tuple[str, str, float]  # a name, the key it writes, seconds to wait before writing
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

metadata = sa.MetaData()
keyed = sa.Table(
    "write_ahead_keyed",
    metadata,
    sa.Column("key", sa.String(8), primary_key=True),
    sa.Column("chunk", sa.String(8), nullable=False),
)


@pytest.fixture
def table(engine: sa.Engine) -> Iterator[sa.Table]:
    metadata.create_all(engine)
    yield keyed
    metadata.drop_all(engine)


def insert(conn: sa.Connection, chunk: Chunk) -> int:
    """Write the chunk's key unless the table holds it; how many rows it wrote."""
    name, key, delay = chunk
    time.sleep(delay)
    statement = sa.text(
        "INSERT INTO write_ahead_keyed (key, chunk) VALUES (:key, :chunk) "
        "ON CONFLICT (key) DO NOTHING"
    )
    return conn.execute(statement, {"key": key, "chunk": name}).rowcount


def keys_of(chunk: Chunk) -> pd.DataFrame:
    return pd.DataFrame({"key": [chunk[1]]})


def rows(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(keyed.c.key, keyed.c.chunk)).all())


@ON_POSTGRES
def test_chunks_come_back_in_order_and_commit_as_they_are_taken(
    engine: sa.Engine, table: sa.Table
) -> None:
    """Whatever the order the writes finish in, the caller gets the chunks in file order,
    each with its transaction open until it commits it."""
    chunks = [("c0", "k0", 0.3), ("c1", "k1", 0.0), ("c2", "k2", 0.1), ("c3", "k3", 0.0)]
    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert, ahead=1, keys=keys_of)
    taken: list[tuple[str, int]] = []
    for written in writes.settled(chunks):
        assert rows(engine).keys() == {f"k{i}" for i in range(len(taken))}  # not yet this one
        taken.append((written.chunk[0], written.result))
        written.commit()
    assert taken == [("c0", 1), ("c1", 1), ("c2", 1), ("c3", 1)]
    assert rows(engine) == {"k0": "c0", "k1": "c1", "k2": "c2", "k3": "c3"}


@ON_POSTGRES
def test_a_failed_chunk_leaves_the_chunks_before_it_and_nothing_after(
    engine: sa.Engine, table: sa.Table
) -> None:
    def insert_or_fail(conn: sa.Connection, chunk: Chunk) -> int:
        if chunk[0] == "c2":
            raise ConnectionResetError("the database went away mid-chunk")
        return insert(conn, chunk)

    chunks = [(f"c{i}", f"k{i}", 0.0) for i in range(5)]
    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert_or_fail, ahead=1, keys=keys_of)
    with pytest.raises(ConnectionResetError):
        for written in writes.settled(chunks):
            written.commit()
    # c3 may have been written ahead of c2's failure: it was rolled back with it.
    assert rows(engine) == {"k0": "c0", "k1": "c1"}
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@ON_POSTGRES
def test_the_caller_stopping_rolls_back_what_it_did_not_commit(
    engine: sa.Engine, table: sa.Table
) -> None:
    """A check between chunks may stop the load (the job was taken back): the chunk in hand
    and the one written ahead are both rolled back, their connections returned."""
    chunks = [(f"c{i}", f"k{i}", 0.0) for i in range(4)]
    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert, ahead=1, keys=keys_of)
    with pytest.raises(RuntimeError, match="taken back"):
        for written in writes.settled(chunks):
            if written.chunk[0] == "c1":
                raise RuntimeError("the job was taken back")
            written.commit()
    assert rows(engine) == {"k0": "c0"}
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@ON_POSTGRES
def test_a_key_repeated_in_the_next_chunk_waits_for_its_commit(
    engine: sa.Engine, table: sa.Table
) -> None:
    """c1 repeats c0's key (a line repeated across a chunk boundary). Written ahead, c1
    would hold or wait for the row c0 writes while the caller waits for c0; it is started
    once c0 has committed instead, finds c0's row and writes nothing."""
    chunks = [("c0", "same", 0.2), ("c1", "same", 0.0), ("c2", "k2", 0.0)]
    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert, ahead=1, keys=keys_of)
    results = run_with_deadline(writes, chunks, seconds=20)
    assert results == [("c0", 1), ("c1", 0), ("c2", 1)]
    assert rows(engine) == {"same": "c0", "k2": "c2"}


@ON_POSTGRES
def test_a_younger_write_holding_the_oldest_chunks_key_yields_to_it(
    engine: sa.Engine, table: sa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the key check cannot see (here: no key check; in a load, another job's chunks)
    is a younger chunk holding a row the oldest one waits for. After STALL_SECONDS the
    younger write is rolled back to its savepoint, the oldest goes on, and the younger one
    is written again in its turn: no hang."""
    monkeypatch.setattr(write_ahead, "STALL_SECONDS", 0.3)
    chunks = [("c0", "same", 0.5), ("c1", "same", 0.0)]
    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert, ahead=1)  # no key check
    results = run_with_deadline(writes, chunks, seconds=20)
    assert results == [("c0", 1), ("c1", 0)]
    assert rows(engine) == {"same": "c0"}


def test_sqlite_writes_each_chunk_in_its_turn(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No writing ahead (ahead=0): one chunk's transaction at a time, on the caller's thread."""
    from etl_assets.db import create_engine

    engine = create_engine(sqlite_url)
    metadata.create_all(engine)
    threads: set[str] = set()

    def insert_here(conn: sa.Connection, chunk: Chunk) -> int:
        threads.add(threading.current_thread().name)
        return insert(conn, chunk)

    writes: ChunkWrites[Chunk, int] = ChunkWrites(engine, insert_here, ahead=0, keys=keys_of)
    for written in writes.settled([("c0", "k0", 0.0), ("c1", "k0", 0.0)]):
        written.commit()
    assert threads == {threading.current_thread().name}
    assert rows(engine) == {"k0": "c0"}


def run_with_deadline(
    writes: ChunkWrites[Chunk, int], chunks: list[Chunk], seconds: float
) -> list[tuple[str, int]]:
    """Take and commit every chunk in a thread; fail (rather than hang) past `seconds`."""
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            for written in writes.settled(chunks):
                results.append((written.chunk[0], written.result))
                written.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(seconds)
    assert not taker.is_alive(), "the chunks waited for each other: the load hangs"
    assert not errors, errors
    return results
