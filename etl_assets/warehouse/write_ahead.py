"""Write a job's chunks of fact rows on two connections at once, committing them in order.

The floor of a large load is PostgreSQL's own work for the rows (heap, WAL, the primary key
and the indexes), and one `COPY` does that work on one core. While chunk k's transaction is
being finished and committed, chunk k+1's fact rows are already being written on a second
connection, by the second server process, on the other core.

Each chunk gets its own connection and transaction. A worker thread writes the chunk's fact
rows (`write`) inside a savepoint and leaves the transaction open; the caller takes the
chunks back oldest first (`ChunkWrites.settled`) and finishes each one in its transaction
(quarantined rows, dimensions, the checkpoint) and commits it, so chunks still commit one
after another in file order and a checkpoint never covers a chunk that did not commit.

Two chunks in flight could wait for each other, each unseen by PostgreSQL's deadlock
detector, since the caller commits chunk k before chunk k+1 and so waits on k while k could
wait on k+1's row locks:
- the same natural key in both chunks (a repeated line across a chunk boundary) would make
  k's insert wait for k+1's uncommitted row: a chunk sharing a key hash with a chunk in
  flight is started only once those have committed;
- two jobs loading the same keys at the same moment could close a cycle through each other's
  chunks: while the oldest chunk's write takes longer than `STALL_SECONDS`, the younger
  chunks' finished writes are rolled back to their savepoint (releasing their row locks),
  and written again once they are the oldest.

On SQLite (one writer at a time) nothing is written ahead: each chunk is written when it is
taken.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

STALL_SECONDS = 2.0  # how long the oldest chunk's write may wait before younger ones yield

KeyHashes = npt.NDArray[np.uint64]  # a hash of each row's natural key
Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


@dataclass(eq=False)
class _InFlight(Generic[Chunk, Result]):
    """One chunk whose transaction is open: its fact rows written, or being written."""

    chunk: Chunk
    conn: sa.Connection
    transaction: sa.RootTransaction
    keys: KeyHashes | None
    future: concurrent.futures.Future[Result] = field(default_factory=concurrent.futures.Future)
    savepoint: sa.NestedTransaction | None = None
    rolled_back: bool = False  # its write yielded to an older chunk: write it again

    def commit(self) -> None:
        """Commit the chunk's transaction and give its connection back."""
        if self.savepoint is not None and self.savepoint.is_active:
            self.savepoint.commit()
        self.transaction.commit()
        self.conn.close()

    def discard(self) -> None:
        """Roll the chunk's transaction back (whatever it wrote) and give its connection back."""
        try:
            if self.transaction.is_active:
                self.transaction.rollback()
        finally:
            self.conn.close()


@dataclass(frozen=True)
class Written(Generic[Chunk, Result]):
    """A chunk whose fact rows are written, in its open transaction on `conn`: finish it
    there and `commit()`."""

    chunk: Chunk
    result: Result
    conn: sa.Connection
    commit: Callable[[], None]


class ChunkWrites(Generic[Chunk, Result]):
    """Writes chunks with `write(conn, chunk)`, `ahead` chunks in advance on connections
    of their own; `settled` hands them back in order with their transactions open."""

    def __init__(
        self,
        engine: Engine,
        write: Callable[[sa.Connection, Chunk], Result],
        *,
        ahead: int,
        keys: Callable[[Chunk], pd.DataFrame] | None = None,
    ) -> None:
        self._engine = engine
        self._write = write
        self._ahead = ahead
        self._keys = keys
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def settled(self, chunks: Iterable[Chunk]) -> Generator[Written[Chunk, Result]]:
        """Write `chunks` and yield each, oldest first, once its fact rows are written. The
        caller must commit (or raise) before taking the next one."""
        in_flight: collections.deque[_InFlight[Chunk, Result]] = collections.deque()
        current: _InFlight[Chunk, Result] | None = None
        if self._ahead > 0:  # the writers of this load, gone when it ends
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._ahead + 1, thread_name_prefix="write-ahead"
            )
        try:
            for chunk in chunks:
                keys = self._key_hashes(chunk)
                if keys is not None and _shares_a_key(keys, in_flight):
                    while in_flight:  # let the chunks holding those keys commit first
                        current = in_flight.popleft()
                        yield self._settle(current, in_flight)
                in_flight.append(self._start(chunk, keys))
                while len(in_flight) > self._ahead:
                    current = in_flight.popleft()
                    yield self._settle(current, in_flight)
                current = None  # committed: its rows may go before the next chunk is made
            while in_flight:
                current = in_flight.popleft()
                yield self._settle(current, in_flight)
            current = None
        finally:
            _discard_all(current, in_flight)
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _key_hashes(self, chunk: Chunk) -> KeyHashes | None:
        if self._keys is None or self._pool is None:
            return None
        frame = self._keys(chunk)
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()

    def _start(self, chunk: Chunk, keys: KeyHashes | None) -> _InFlight[Chunk, Result]:
        conn = self._engine.connect()
        flight: _InFlight[Chunk, Result] = _InFlight(chunk, conn, conn.begin(), keys)
        if self._pool is None:
            try:
                flight.future.set_result(self._write(conn, chunk))
            except BaseException:
                flight.discard()
                raise
        else:
            flight.future = self._pool.submit(self._write_ahead, flight)
        return flight

    def _write_ahead(self, flight: _InFlight[Chunk, Result]) -> Result:
        flight.savepoint = flight.conn.begin_nested()
        return self._write(flight.conn, flight.chunk)

    def _settle(
        self,
        flight: _InFlight[Chunk, Result],
        younger: Sequence[_InFlight[Chunk, Result]],
    ) -> Written[Chunk, Result]:
        """`flight`, the oldest chunk, once its write is done (written again if it yielded)."""
        while True:
            try:
                result = flight.future.result(timeout=STALL_SECONDS)
                break
            except concurrent.futures.TimeoutError:
                _yield_to_oldest(younger)
        if flight.rolled_back:
            result = self._write(flight.conn, flight.chunk)
        return Written(flight.chunk, result, flight.conn, flight.commit)


def _shares_a_key(keys: KeyHashes, in_flight: Iterable[_InFlight[Chunk, Result]]) -> bool:
    return any(
        flight.keys is not None and bool(np.isin(keys, flight.keys).any()) for flight in in_flight
    )


def _yield_to_oldest(younger: Iterable[_InFlight[Chunk, Result]]) -> None:
    """Roll back the finished writes of the chunks behind a stalled oldest one: whatever row
    locks it waits for, none of them is this job's any more."""
    for flight in younger:
        savepoint = flight.savepoint
        written = flight.future.done() and flight.future.exception() is None
        if written and not flight.rolled_back and savepoint is not None and savepoint.is_active:
            savepoint.rollback()
            flight.rolled_back = True
            logger.info("a chunk written ahead yielded to an older one waiting on a lock")


def _discard_all(
    current: _InFlight[Chunk, Result] | None, in_flight: Iterable[_InFlight[Chunk, Result]]
) -> None:
    """Roll back every chunk not committed, oldest first: a younger write waiting on an older
    chunk's row locks can finish once those are released."""
    pending = ([current] if current is not None else []) + list(in_flight)
    for flight in pending:
        if flight.conn.closed:
            continue
        try:
            concurrent.futures.wait([flight.future])
            flight.discard()
        except Exception:
            logger.warning("could not roll back a chunk's transaction", exc_info=True)
