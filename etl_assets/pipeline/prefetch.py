"""Run an iterator one step ahead in a background thread.

The warehouse load alternates between Python work (reading and transforming a chunk) and
database work (COPY and upsert, done by the database server's own process). Producing chunk
k+1 while chunk k is being loaded keeps both cores busy; pandas, Arrow and psycopg2 release
the GIL for most of their work. At most `depth` items wait, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
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
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(waiting, item, stopped):
                    return
            _put(waiting, _DONE, stopped)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            _put(waiting, _Raised(exc), stopped)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stopped.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                waiting.get(timeout=0.05)
        worker.join()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(waiting: queue.Queue[object], item: object, stopped: threading.Event) -> bool:
    """Put `item` unless the consumer stopped; False when it did."""
    while not stopped.is_set():
        try:
            waiting.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
