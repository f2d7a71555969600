"""Run an iterator one step ahead in a background thread.

The warehouse load alternates between Python work (reading and transforming a chunk) and
database work (COPY and upsert, done by the database server's own process). Producing chunk
k+1 while chunk k is being loaded keeps both cores busy; pandas, Arrow and psycopg2 release
the GIL for most of their work. The producer starts an item only when the consumer has taken
the one before, so at most `depth` items exist beside the one the consumer holds: memory stays
bounded by two chunks, not three.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, computing up to `depth` items ahead in another thread.

    An exception raised while producing is raised to the consumer at the item where it
    happened. If the consumer stops early, the producer stops after its current item.
    """
    handed: queue.Queue[object] = queue.Queue()  # never more than `depth` items: see slots
    slots = threading.Semaphore(depth)  # one per item produced and not yet taken
    stopped = threading.Event()

    def produce() -> None:
        try:
            iterator = iter(items)
            while _acquire(slots, stopped):
                item = next(iterator, _DONE)
                handed.put(item)
                if item is _DONE:
                    return
                del item  # the consumer's now: do not keep it alive while producing the next
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            handed.put(_Raised(exc))

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = handed.get()
            slots.release()  # the producer may start the next item now
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item  # type: ignore[misc]
            del item
    finally:
        stopped.set()
        slots.release()  # wake a producer waiting for a slot: it sees `stopped` and returns
        worker.join()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _acquire(slots: threading.Semaphore, stopped: threading.Event) -> bool:
    """Wait for a slot unless the consumer stopped; False when it did."""
    while not stopped.is_set():
        if slots.acquire(timeout=0.05):
            return not stopped.is_set()
    return False
