"""The portal's sync iteration: every item in order on the caller's thread, errors after the
items before them, and closing the iterator cancels the producer on the portal loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jupyter_runs import _portal


def test_iterate_hands_over_every_item_in_order_on_the_callers_thread():
    threads = set()

    async def numbers():
        for i in range(20_000):
            if i % 1000 == 0:
                await asyncio.sleep(0)  # some items arrive while the consumer waits, some in bursts
            yield i

    got = []
    for item in _portal.iterate(numbers):
        threads.add(threading.current_thread())
        got.append(item)
    assert got == list(range(20_000))
    assert threads == {threading.current_thread()}


def test_iterate_raises_the_producers_error_after_the_items_before_it():
    async def failing():
        yield 1
        yield 2
        raise ValueError("broken stream")

    got = []
    with pytest.raises(ValueError, match="broken stream"):
        for item in _portal.iterate(failing):
            got.append(item)
    assert got == [1, 2]


def test_closing_the_iterator_cancels_the_producer():
    closed = threading.Event()

    async def endless():
        try:
            i = 0
            while True:
                await asyncio.sleep(0.001)
                yield i
                i += 1
        finally:
            closed.set()

    items = _portal.iterate(endless)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.wait(5)
