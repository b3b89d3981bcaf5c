"""LocalBackend: the embedded engine behind the :class:`~jupyter_runs.backends.Backend` protocol.

The engine, its runs and its SQLite connection live on the portal loop (a daemon thread, see
``_portal.py``), so runs keep going whichever loop asked for them and SQLite is only ever touched
from one thread. Calls from another loop hop over with ``run_coroutine_threadsafe``; streams are
pumped over in *batches* of whatever events are ready, because one cross-thread wake-up per event
would cost more than the event itself (the 200k-event benchmark measures exactly that). Calls made
on the portal loop itself (the sync client) go straight to the engine.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from ... import _portal
from ...errors import APIConnectionError
from ...wire import Event
from .engine import Engine
from .store import Store

T = TypeVar("T")


class LocalBackend:
    """Assistants operations answered by the embedded engine.

    ``store`` is a :class:`Store`, a path, ``":memory:"``, or ``None`` for the default file
    (``$JUPYTER_RUNS_STORE`` or the Jupyter data dir). ``expires_after`` is how long a run waits
    for tool outputs before it expires; ``model_config`` is passed to ``resolve_model`` (e.g.
    ``base_url``, ``api_key``); ``cassette`` and ``cassette_mode`` record or replay model calls.
    """

    poll_interval = 0.05

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        expires_after: float = 600.0,
        model_config: Mapping[str, Any] | None = None,
        cassette: str | os.PathLike[str] | None = None,
        cassette_mode: str = "off",
        run_cassettes: bool = True,
    ) -> None:
        self._owns_store = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store)
        # In-process, a run may name its own cassette (the magic's per-cell option does); a served
        # engine passes run_cassettes=False, so no remote client picks a file to read or write.
        self.engine = Engine(self.store, expires_after=expires_after, model_config=model_config,
                             cassette=cassette, cassette_mode=cassette_mode,
                             run_cassettes=run_cassettes)
        self._closed = False

    def __repr__(self) -> str:
        return f"LocalBackend(store={self.store.path!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise APIConnectionError("the embedded engine was closed (LocalBackend.aclose)")

    async def _on_portal(self, factory: Any) -> Any:
        self._check_open()
        portal = _portal.loop()
        if asyncio.get_running_loop() is portal:
            return await factory()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_await(factory()), portal))

    async def call(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self._on_portal(lambda: self.engine.call(op, params, body, query))

    async def stream(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        async for batch in self.stream_batches(op, params, body=body):
            for event in batch:
                yield event

    async def stream_batches(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> AsyncIterator[list[Event]]:
        """:meth:`stream` in the engine's batches (the events ready together), for a consumer
        that pays per batch rather than per event: the server writes one body chunk per batch."""
        self._check_open()
        portal = _portal.loop()
        caller = asyncio.get_running_loop()
        if caller is portal:
            async for batch in self.engine.stream_batches(op, params, body):
                yield batch
            return
        # An asyncio.Queue of the caller's loop, fed with call_soon_threadsafe: one wake-up per
        # batch. None ends the stream; an exception is raised on the caller's side.
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        def send(item: Any) -> None:
            try:
                caller.call_soon_threadsafe(inbox.put_nowait, item)
            except RuntimeError:  # the consumer's loop is gone; the run goes on regardless
                raise asyncio.CancelledError from None

        async def pump() -> None:
            try:
                async for batch in self.engine.stream_batches(op, params, body):
                    send(batch)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                send(exc)
            else:
                send(None)

        future = asyncio.run_coroutine_threadsafe(pump(), portal)
        try:
            while True:
                item = await inbox.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # Stops the pump only: the run itself is a task of the engine and keeps going.
            future.cancel()

    async def aclose(self) -> None:
        """Stop the engine's runs (they end ``failed``, interrupted) and close the store."""
        if self._closed:
            return

        async def close() -> None:
            await self.engine.aclose()
            if self._owns_store:
                self.store.close()

        await self._on_portal(close)
        self._closed = True


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable
