"""Store writes that never make the engine's loop wait for SQLite's write lock.

The store is synchronous and lives on the engine's loop (see ``engine.py``). SQLite lets one
writer at a time hold the lock; with ``busy_timeout`` a blocked writer *sleeps inside* SQLite, and
on the loop that sleep stalls every request, reads included (WAL readers themselves never wait).
So the engine's connection waits at most :data:`BUSY_TIMEOUT_MS`, and a write that finds the lock
held is retried from the loop with ``await asyncio.sleep`` in between: the loop answers reads and
streams meanwhile.

Two kinds of writes:
- an operation's own writes (create a message, submit tool outputs...): the operation is retried
  until :data:`WAIT` seconds pass, then answers :class:`StoreBusyError`; nothing is half done,
  because each operation writes in one transaction before it changes anything in memory;
- a run's progress (a finished reply, its end): :class:`WriteQueue` writes it at once, or, when
  the lock is held, keeps a copy and writes it, in order, as soon as the lock frees. A run never
  fails or sticks because the store was busy: clients are told what happened, the thread is
  released, and the file catches up. Operations that write first wait for the queue (so the file
  never goes back in time), and reads of a queued run answer from the queue.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ...errors import APIError
from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long the engine's connection may sleep inside SQLite waiting for the write lock.
BUSY_TIMEOUT_MS = 20
#: How long an operation waits (yielding to the loop) for the write lock before answering busy.
WAIT = 30.0
#: A queued write that fails for another reason than the lock is retried this many times.
_OTHER_ERROR_TRIES = 5


class StoreBusyError(APIError):
    """Another process held the store's write lock for longer than :data:`WAIT` seconds."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, code="store_busy")


def is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _busy_message() -> str:
    return (f"the store is busy: another process held its write lock for more than {WAIT:g} s; "
            "try again")


async def retrying(fn: Callable[[], T], wait: float = WAIT) -> T:
    """``fn()``, retried while the write lock is held (yielding between tries) for ``wait`` s."""
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreBusyError(_busy_message()) from None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


Item = list[tuple[str, dict[str, Any]]]


class WriteQueue:
    """Ordered writes of run progress: now if the lock is free, else as soon as it frees."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._items: deque[Item] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, *objects: tuple[str, Mapping[str, Any]]) -> None:
        """Write ``(kind, object)`` pairs (kind: message, step, run) in one transaction. Copies are
        queued, so the caller may keep changing its objects. Never raises for a busy store."""
        item = [(kind, copy.deepcopy(dict(obj))) for kind, obj in objects]
        if not self._items:
            try:
                self._write(item)
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    log.warning("store write failed (%s); will retry", exc)
        self._items.append(item)
        self._kick()

    def pending(self, kind: str, ident: str) -> dict[str, Any] | None:
        """The newest queued copy of an object (not yet in the file), or None."""
        for item in reversed(self._items):
            for k, obj in reversed(item):
                if k == kind and obj.get("id") == ident:
                    return copy.deepcopy(obj)
        return None

    async def drain(self, wait: float = WAIT) -> None:
        """Wait until every queued write is in the file; StoreBusyError after ``wait`` s."""
        if not self._items:
            return
        task = self._kick()
        try:
            await asyncio.wait_for(asyncio.shield(task), wait)
        except asyncio.TimeoutError:
            raise StoreBusyError(_busy_message()) from None

    def flush_now(self, busy_timeout_ms: int = 5000) -> None:
        """Last chance at shutdown: write what is queued, waiting in SQLite; log what is lost."""
        conn = self.store.connection
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        try:
            while self._items:
                try:
                    self._write(self._items[0])
                except sqlite3.Error as exc:
                    log.error("store writes lost at shutdown (%d transactions): %s",
                              len(self._items), exc)
                    self._items.clear()
                    return
                self._items.popleft()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _write(self, item: Item) -> None:
        store = self.store
        with store.transaction():
            for kind, obj in item:
                getattr(store, f"put_{kind}")(obj)

    def _kick(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush(), name="jupyter-runs store writes")
        return self._task

    async def _flush(self) -> None:
        delay, failures = 0.005, 0
        while self._items:
            try:
                self._write(self._items[0])
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    failures += 1
                    if failures >= _OTHER_ERROR_TRIES:
                        log.error("dropping a store write after %d failures: %s", failures, exc)
                        self._items.popleft()
                        failures = 0
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            self._items.popleft()
            delay, failures = 0.005, 0
