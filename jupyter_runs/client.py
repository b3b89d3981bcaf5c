"""Client and AsyncClient: the Assistants resources over a backend.

``AsyncClient`` holds the logic; ``Client`` is a facade that runs each call on the portal loop
(``_portal.py``), so it works in a plain script and inside a notebook cell alike, with no
``asyncio.run`` and no ``nest_asyncio``. Both hand out the same ``Run`` / ``RunStream`` drivers.

Callables passed as ``tools=`` are turned into function tools *and remembered by name*: passing a
function is how a user exposes it, so runs of this client may call it without it also being in the
caller's namespace.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

from . import _portal
from .backends import Backend
from .runs import Run, RunStream
from .tools import to_tool_params
from .wire import Assistant, Deleted, Message, RunStep, Thread, WireObject, wrap

_PAGE_KEYS = ("limit", "order", "after", "before")


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop parameters left at ``None`` so the server's defaults apply."""
    return {k: v for k, v in params.items() if v is not None}


class AsyncPager:
    """Auto-paging iterator over a list endpoint: follows ``last_id`` while ``has_more``.

    A page is requested only when iteration reaches it, so taking the first items of a long list
    (or abandoning the iterator) costs one page, never the rest of the list.
    """

    def __init__(self, backend: Backend, op: str, params: Mapping[str, str], query: dict[str, Any]):
        self._backend, self._op, self._params, self._query = backend, op, params, query

    async def _fetch(self, query: Mapping[str, Any]) -> WireObject:
        return wrap(await self._backend.call(self._op, self._params, query=query))

    def _next_query(self, query: dict[str, Any], page: Mapping[str, Any]) -> dict[str, Any] | None:
        """The query of the page after ``page``, or None at the end of the list."""
        if not page.get("has_more") or not page.get("data"):
            return None
        key = "before" if query.get("before") and not query.get("after") else "after"
        return {**query, key: page["last_id"] if key == "after" else page["first_id"]}

    async def pages(self) -> AsyncIterator[WireObject]:
        query: dict[str, Any] | None = dict(self._query)
        while query is not None:
            page = await self._fetch(query)
            yield page
            query = self._next_query(query, page)

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for page in self.pages():
            for item in page["data"]:
                yield item

    async def to_list(self) -> list[Any]:
        return [item async for item in self]


class Pager:
    """The sync twin of :class:`AsyncPager`: each page is one call on the portal loop, made when
    iteration reaches it. (Not a stream driven from the portal: that one read ahead through the
    whole list, and an abandoned pager kept the engine busy paging for nobody.)"""

    def __init__(self, pager: AsyncPager) -> None:
        self._pager = pager

    def __iter__(self) -> Iterator[Any]:
        for page in self.pages():
            yield from page["data"]

    def pages(self) -> Iterator[WireObject]:
        pager = self._pager
        query: dict[str, Any] | None = dict(pager._query)
        while query is not None:
            page = _portal.call(functools.partial(pager._fetch, query))
            yield page
            query = pager._next_query(query, page)

    def to_list(self) -> list[Any]:
        return list(self)


class _Resource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _call(self, op: str, params: Mapping[str, str] | None = None, **kw: Any) -> Any:
        return wrap(await self._client.backend.call(op, params or {}, **kw))

    def _list(self, op: str, params: Mapping[str, str] | None, query: Mapping[str, Any]) -> AsyncPager:
        return AsyncPager(self._client.backend, op, params or {}, _clean(query))


class AsyncAssistants(_Resource):
    async def create(self, model: str, *, tools: Iterable[Any] | None = None, **params: Any) -> Assistant:
        body = _clean({"model": model, **params})
        if tools is not None:
            body["tools"] = self._client._expose(tools)
        return await self._call("create_assistant", body=body)

    async def retrieve(self, assistant_id: str) -> Assistant:
        return await self._call("retrieve_assistant", {"assistant_id": assistant_id})

    async def modify(self, assistant_id: str, *, tools: Iterable[Any] | None = None, **params: Any) -> Assistant:
        body = _clean(params)
        if tools is not None:
            body["tools"] = self._client._expose(tools)
        return await self._call("modify_assistant", {"assistant_id": assistant_id}, body=body)

    update = modify

    async def delete(self, assistant_id: str) -> Deleted:
        return await self._call("delete_assistant", {"assistant_id": assistant_id})

    def list(self, **query: Any) -> AsyncPager:
        return self._list("list_assistants", None, query)


class AsyncThreads(_Resource):
    async def create(self, *, messages: Iterable[Mapping[str, Any]] | None = None, **params: Any) -> Thread:
        body = _clean(params)
        if messages is not None:
            body["messages"] = list(messages)
        return await self._call("create_thread", body=body)

    async def retrieve(self, thread_id: str) -> Thread:
        return await self._call("retrieve_thread", {"thread_id": thread_id})

    async def modify(self, thread_id: str, **params: Any) -> Thread:
        return await self._call("modify_thread", {"thread_id": thread_id}, body=_clean(params))

    update = modify

    async def delete(self, thread_id: str) -> Deleted:
        return await self._call("delete_thread", {"thread_id": thread_id})

    def list(self, **query: Any) -> AsyncPager:
        """Stored threads, newest first by default (an extension: the embedded engine and
        `jupyter-runs serve` answer it; OpenAI's API never could list threads). ``name=`` keeps
        the threads of that name (their ``jupyter_runs_name`` metadata), ``name_prefix=`` those
        whose name starts with it; both are answered from an index."""
        return self._list("list_threads", None, query)

    # Thread lifecycle (extensions the embedded engine and `jupyter-runs serve` answer).
    async def rewind(self, thread_id: str, *, message_id: str | None = None,
                     metadata: Mapping[str, str] | None = None) -> WireObject:
        """Move ``message_id`` (or the earliest message whose metadata matches ``metadata``) and
        everything after it into a new history thread; the answer names it and counts what moved."""
        body = _clean({"message_id": message_id, "metadata": dict(metadata) if metadata else None})
        return await self._call("rewind_thread", {"thread_id": thread_id}, body=body)

    async def fork(self, thread_id: str, *, metadata: Mapping[str, str] | None = None) -> Thread:
        """A new thread holding a copy of this one: messages, finished runs and their steps."""
        body = _clean({"metadata": dict(metadata) if metadata is not None else None})
        return await self._call("fork_thread", {"thread_id": thread_id}, body=body)

    async def export(self, thread_id: str) -> dict[str, Any]:
        """The whole thread as one JSON-ready dict (thread, messages, runs with their steps);
        :mod:`jupyter_runs.export` renders it as markdown or HTML, :meth:`import_` reads it back."""
        from .export import collect

        return await collect(self._client, thread_id)

    async def import_(self, export: Mapping[str, Any], *, metadata: Mapping[str, str] | None = None) -> Thread:
        """A new thread with the messages of an :meth:`export` (the run steps stay in the export:
        the Assistants API has no way to create them)."""
        from .export import restore

        return await restore(self._client, export, metadata)

    async def create_and_run(
        self, *, assistant_id: str, thread: Mapping[str, Any] | None = None, stream: bool = False,
        tools: Iterable[Any] | None = None, **params: Any,
    ) -> Run | RunStream:
        """Create a thread and start a run on it (``POST /threads/runs``)."""
        body = _clean({"assistant_id": assistant_id, "thread": thread, **params})
        if tools is not None:
            body["tools"] = self._client._expose(tools)
        return await self._client.runs._start("create_thread_and_run", {}, body, stream, thread_id=None)


class AsyncMessages(_Resource):
    async def create(
        self, thread_id: str, *, content: Any, role: str = "user", context: Any = None, **params: Any
    ) -> Message:
        """Add a message. ``context`` attaches descriptions of notebook objects to it (see
        ``jupyter_runs.context``): ``{"df": df}``, or names looked up in the IPython namespace
        (``"df, error"``, ``["df", "In[3]"]``), or ``Attachment`` objects."""
        if context is not None:
            from .context import with_context

            content, params = with_context(content, params, context)
        body = _clean({"role": role, "content": content, **params})
        return await self._call("create_message", {"thread_id": thread_id}, body=body)

    async def retrieve(self, thread_id: str, message_id: str) -> Message:
        return await self._call("retrieve_message", {"thread_id": thread_id, "message_id": message_id})

    async def modify(self, thread_id: str, message_id: str, **params: Any) -> Message:
        return await self._call(
            "modify_message", {"thread_id": thread_id, "message_id": message_id}, body=_clean(params)
        )

    update = modify

    async def delete(self, thread_id: str, message_id: str) -> Deleted:
        return await self._call("delete_message", {"thread_id": thread_id, "message_id": message_id})

    def list(self, thread_id: str, **query: Any) -> AsyncPager:
        return self._list("list_messages", {"thread_id": thread_id}, query)


class AsyncRuns(_Resource):
    async def create(
        self, thread_id: str, *, assistant_id: str, stream: bool = False,
        tools: Iterable[Any] | None = None, **params: Any,
    ) -> Run | RunStream:
        """Start a run. ``stream=False`` returns a :class:`Run` (poll it with ``wait``);
        ``stream=True`` a :class:`RunStream` whose request opens when you consume it."""
        body = _clean({"assistant_id": assistant_id, **params})
        if tools is not None:
            body["tools"] = self._client._expose(tools)
        return await self._start("create_run", {"thread_id": thread_id}, body, stream, thread_id=thread_id)

    async def _start(
        self, op: str, params: dict[str, str], body: dict[str, Any], stream: bool, *, thread_id: str | None
    ) -> Run | RunStream:
        if stream:
            backend = self._client.backend
            return RunStream(
                self._client, thread_id,
                opener=lambda: backend.stream(op, params, body={**body, "stream": True}),
            )
        data = await self._call(op, params, body=body)
        return Run._from_data(self._client, data)

    async def retrieve(self, thread_id: str, run_id: str) -> Run:
        data = await self._call("retrieve_run", {"thread_id": thread_id, "run_id": run_id})
        return Run._from_data(self._client, data)

    async def modify(self, thread_id: str, run_id: str, **params: Any) -> Run:
        data = await self._call("modify_run", {"thread_id": thread_id, "run_id": run_id}, body=_clean(params))
        return Run._from_data(self._client, data)

    update = modify

    async def cancel(self, thread_id: str, run_id: str) -> Run:
        data = await self._call("cancel_run", {"thread_id": thread_id, "run_id": run_id})
        return Run._from_data(self._client, data)

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, *, tool_outputs: list[Mapping[str, Any]], stream: bool = False
    ) -> Run | RunStream:
        body = {"tool_outputs": list(tool_outputs)}
        return await self._start(
            "submit_tool_outputs", {"thread_id": thread_id, "run_id": run_id}, body, stream, thread_id=thread_id
        )

    def list(self, thread_id: str, **query: Any) -> AsyncPager:
        return self._list("list_runs", {"thread_id": thread_id}, query)


class AsyncSteps(_Resource):
    async def retrieve(self, thread_id: str, run_id: str, step_id: str, **query: Any) -> RunStep:
        params = {"thread_id": thread_id, "run_id": run_id, "step_id": step_id}
        return await self._call("retrieve_run_step", params, query=_clean(query) or None)

    def list(self, thread_id: str, run_id: str, **query: Any) -> AsyncPager:
        return self._list("list_run_steps", {"thread_id": thread_id, "run_id": run_id}, query)


def _cassette_settings(cassette: Any, mode: str | None) -> dict[str, Any]:
    """The embedded engine's cassette: the arguments, else ``$JUPYTER_RUNS_CASSETTE`` and
    ``$JUPYTER_RUNS_CASSETTE_MODE`` (so CI can switch a whole notebook to replay)."""
    from .backends.local.models.cassette import check_mode

    cassette = cassette or os.environ.get("JUPYTER_RUNS_CASSETTE") or None
    mode = check_mode(mode or os.environ.get("JUPYTER_RUNS_CASSETTE_MODE") or "off")
    if mode != "off" and not cassette:
        from .backends.local.models.cassette import default_cassette_path

        cassette = default_cassette_path(None)
    return {"cassette": cassette, "cassette_mode": mode}


class AsyncClient:
    """The Assistants API on the embedded engine (default) or a remote server.

    ``AsyncClient()`` keeps threads in the default SQLite store; ``store=":memory:"`` keeps
    nothing on disk; ``base_url=...`` talks to a remote Assistants-compatible server;
    ``backend=`` takes any object with the :class:`~jupyter_runs.backends.Backend` methods.
    ``cassette=PATH, cassette_mode="record" | "replay" | "auto"`` records or replays the embedded
    engine's model calls (``backends/local/models/cassette.py``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        store: str | os.PathLike[str] | None = None,
        backend: Backend | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        model_config: Mapping[str, Any] | None = None,
        cassette: str | os.PathLike[str] | None = None,
        cassette_mode: str | None = None,
    ) -> None:
        if backend is None:
            if base_url:
                from .backends.http import HTTPBackend

                if cassette or cassette_mode not in (None, "off"):
                    raise ValueError(
                        "a cassette records the embedded engine's model calls; for a remote "
                        "server, start it with `jupyter-runs serve --cassette FILE`")
                backend = HTTPBackend(base_url, api_key, timeout=timeout, max_retries=max_retries)
            else:
                from .backends.local.backend import LocalBackend

                backend = LocalBackend(store=store, model_config=dict(model_config or {}),
                                       **_cassette_settings(cassette, cassette_mode))
        self.backend: Backend = backend
        self.base_url = base_url
        self._callables: dict[str, Callable[..., Any]] = {}
        self.assistants = AsyncAssistants(self)
        self.threads = AsyncThreads(self)
        self.messages = AsyncMessages(self)
        self.runs = AsyncRuns(self)
        self.steps = AsyncSteps(self)

    def __repr__(self) -> str:
        where = self.base_url or "embedded"
        return f"{type(self).__name__}({where})"

    def _expose(self, tools: Iterable[Any]) -> list[dict[str, Any]]:
        """Tool dicts for ``tools``; callables among them become callable by runs of this client."""
        tools = list(tools)
        params = to_tool_params(tools)
        for tool, param in zip(tools, params):
            if callable(tool) and not isinstance(tool, Mapping):
                self._callables[param["function"]["name"]] = tool
        return params

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class _SyncResource:
    """Runs each coroutine method of an async resource on the portal loop; pagers become sync."""

    def __init__(self, resource: _Resource) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._resource, name)
        if name.startswith("_") or not callable(method):
            return method

        def sync(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if isinstance(result, AsyncPager):
                return Pager(result)
            return _portal.call(lambda: result)

        sync.__name__ = name
        sync.__doc__ = method.__doc__
        return sync

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._resource) if not n.startswith("_")]


class Client:
    """The sync facade of :class:`AsyncClient` (same arguments, same resources), safe to use in
    notebook cells. Each call runs on the portal loop; results are the same wire objects and the
    same ``Run`` / ``RunStream`` drivers."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any) -> None:
        self._async = AsyncClient(base_url, api_key, **kwargs)
        self.backend = self._async.backend
        self.base_url = base_url
        self.assistants = _SyncResource(self._async.assistants)
        self.threads = _SyncResource(self._async.threads)
        self.messages = _SyncResource(self._async.messages)
        self.runs = _SyncResource(self._async.runs)
        self.steps = _SyncResource(self._async.steps)

    def __repr__(self) -> str:
        return f"Client({self.base_url or 'embedded'})"

    @property
    def async_client(self) -> AsyncClient:
        return self._async

    def close(self) -> None:
        _portal.call(self._async.aclose)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
