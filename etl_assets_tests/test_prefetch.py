"""Prefetching keeps order, passes errors on, and stops when the consumer stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from etl_assets.pipeline.prefetch import prefetch


def test_items_arrive_in_order() -> None:
    assert list(prefetch(range(50))) == list(range(50))
    assert list(prefetch([])) == []


def test_the_next_item_is_produced_while_the_consumer_works() -> None:
    second_produced = threading.Event()

    def items() -> Iterator[int]:
        yield 0
        second_produced.set()
        yield 1

    for item in prefetch(items()):
        if item == 0:
            # still busy with item 0, yet item 1 gets produced meanwhile
            assert second_produced.wait(timeout=10)


def test_no_more_than_one_item_is_produced_ahead() -> None:
    # Memory: the consumer's chunk and the next one, never a third waiting in a queue.
    started: list[int] = []

    def items() -> Iterator[int]:
        for n in range(4):
            started.append(n)
            yield n

    for item in prefetch(items()):
        if item == 0:
            deadline = time.monotonic() + 10
            while len(started) < 2 and time.monotonic() < deadline:  # item 1 is produced...
                time.sleep(0.01)
            # ...and a producer that did not wait for the consumer would start item 2 now
            time.sleep(0.2)
            assert started == [0, 1]
    assert started == [0, 1, 2, 3]


def test_an_error_reaches_the_consumer_at_its_item() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("chunk 2 is broken")

    seen = []
    with pytest.raises(ValueError, match="chunk 2 is broken"):
        for item in prefetch(failing()):
            seen.append(item)
    assert seen == [1]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    for item in prefetch(endless()):
        if item == 3:
            break
    time.sleep(0.1)
    assert len(produced) <= 6
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
