"""The background event loop behind every sync facade.

A notebook cell already runs inside the kernel's event loop, so ``asyncio.run`` fails there and
``nest_asyncio`` corrupts it. Instead, sync calls hand their coroutine to one daemon thread that
owns a private loop and block on the result. The embedded engine lives on the same loop, so a sync
call into it costs one thread hop. Blocking the kernel's thread is fine: nothing that the
coroutine needs runs there (tool calls come back to the caller's thread; see ``runs.py``).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The portal loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or not _thread or not _thread.is_alive():
            ready = threading.Event()
            new_loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(new_loop)
                ready.set()
                new_loop.run_forever()

            _thread = threading.Thread(target=run, name="jupyter-runs-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = new_loop
        return _loop


def in_portal() -> bool:
    """True on the portal thread, where blocking on the portal would deadlock."""
    return _thread is not None and threading.current_thread() is _thread


def call(factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
    """Run ``factory()`` on the portal loop and block until it returns (or raises).

    A KeyboardInterrupt while waiting cancels the coroutine before propagating, so Ctrl-C in a
    cell never leaves work running behind the user's back.
    """
    if in_portal():
        raise RuntimeError("a sync jupyter_runs call was made on its own event loop thread; use the async API")

    async def runner() -> T:
        return await factory()

    future = asyncio.run_coroutine_threadsafe(runner(), loop())
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


_END = object()
#: async iterators that can hand :class:`Deferred` work over -> the callback that switches them to it
_offers: weakref.WeakKeyDictionary[Any, Callable[[], None]] = weakref.WeakKeyDictionary()


class Deferred:
    """Work a producer driven by :func:`iterate` hands to the consumer's thread: ``run()`` is a
    generator run there, whose items are yielded in its place; if it returns True, the iteration
    ends (and the producer is cancelled).

    Why: objects built on the portal thread and queued for the consumer outlive the cyclic GC's
    young generations (the GIL lets the producer run ~5 ms before the consumer gets a turn), and
    with 200,000 decoded events the collections cost more than the decoding. Handing over the raw
    chunk and decoding it on the consumer's thread queues only bytes, which the GC never tracks.
    """

    __slots__ = ("run",)

    def __init__(self, run: Callable[[], Generator[Any, None, bool | None]]) -> None:
        self.run = run


def offer_deferred(source: AsyncIterator[Any], enable: Callable[[], None]) -> None:
    """Say that ``source`` (not yet started) can yield :class:`Deferred` items instead of its
    items; :func:`iterate` calls ``enable()`` when it drives ``source`` directly. Any other
    consumer (e.g. a backend wrapping this one) gets the plain items."""
    _offers[source] = enable


def iterate(factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Drive an async iterator on the portal loop and yield its items on the calling thread.

    Items are handed over so the consumer (callbacks, tool calls) runs on the caller's thread.
    Closing the returned generator (or an exception in the consumer) cancels the producer, which
    closes the underlying stream.

    The hand-over is a deque plus a wake-up token sent only when the consumer is waiting, not a
    blocking queue operation per item: the consumer takes whatever arrived while it worked, in
    order. A source offered via :func:`offer_deferred` hands over :class:`Deferred` work instead
    (the HTTP backend's raw chunks), which the consumer runs here, in the same order.
    """
    if in_portal():
        raise RuntimeError("a sync jupyter_runs stream was opened on its own event loop thread; use the async API")
    items: collections.deque[Any] = collections.deque()
    wake: queue.SimpleQueue[None] = queue.SimpleQueue()
    waiting = False  # the consumer is blocked on `wake` (or about to be): the producer must wake it

    def hand_over(item: Any) -> None:
        nonlocal waiting
        items.append(item)
        if waiting:
            waiting = False
            wake.put(None)

    async def produce() -> None:
        nonlocal waiting
        try:
            source = factory()
            enable = _offers.pop(source, None)
            if enable is not None:
                enable()
            async for item in source:
                items.append(item)
                if waiting:
                    waiting = False
                    wake.put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            hand_over((_END, exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            hand_over((_END, None))

    future = asyncio.run_coroutine_threadsafe(produce(), loop())
    pop = items.popleft
    try:
        while True:
            if not items:
                # Flag first, then look again: an item appended in between is seen here, and a
                # token sent in between only makes a later wait return early (harmless).
                waiting = True
                if not items:
                    wake.get()
                waiting = False
                continue
            item = pop()
            if type(item) is Deferred:
                if (yield from item.run()):
                    return
                continue
            if type(item) is tuple and len(item) == 2 and item[0] is _END:
                if item[1] is not None and not isinstance(item[1], asyncio.CancelledError):
                    raise item[1]
                return
            yield item
    finally:
        if not future.done():
            future.cancel()
