"""Backends: one async interface carrying the Assistants operations.

Every operation has one name and one HTTP route, listed once in :data:`OPERATIONS`. The HTTP
backend turns a call into that request, the server turns that request back into the same call on
the embedded engine, and the client's resources only ever say ``backend.call("create_run", ...)``.
So a route is written down in exactly one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..wire import Event


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    method: str
    path: str  # relative to the API root (``/v1``), with ``{param}`` placeholders
    streams: bool = False  # accepts ``"stream": true`` and then answers with SSE
    paged: bool = False  # a list endpoint with limit/order/after/before


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("list_assistants", "GET", "/assistants", paged=True),
        Operation("create_assistant", "POST", "/assistants"),
        Operation("retrieve_assistant", "GET", "/assistants/{assistant_id}"),
        Operation("modify_assistant", "POST", "/assistants/{assistant_id}"),
        Operation("delete_assistant", "DELETE", "/assistants/{assistant_id}"),
        # Extension (not in the OpenAI spec, which cannot list threads): lets `%runs threads`
        # list the embedded store and a served engine alike. Items are thread objects.
        Operation("list_threads", "GET", "/threads", paged=True),
        Operation("create_thread", "POST", "/threads"),
        Operation("create_thread_and_run", "POST", "/threads/runs", streams=True),
        Operation("retrieve_thread", "GET", "/threads/{thread_id}"),
        Operation("modify_thread", "POST", "/threads/{thread_id}"),
        Operation("delete_thread", "DELETE", "/threads/{thread_id}"),
        # Extensions for the thread lifecycle (not in the OpenAI spec): rewind moves a message
        # and everything after it into a history thread (re-running a notebook cell); fork
        # copies a thread, runs and steps included, to branch an exploration.
        Operation("rewind_thread", "POST", "/threads/{thread_id}/rewind"),
        Operation("fork_thread", "POST", "/threads/{thread_id}/fork"),
        Operation("list_messages", "GET", "/threads/{thread_id}/messages", paged=True),
        Operation("create_message", "POST", "/threads/{thread_id}/messages"),
        Operation("retrieve_message", "GET", "/threads/{thread_id}/messages/{message_id}"),
        Operation("modify_message", "POST", "/threads/{thread_id}/messages/{message_id}"),
        Operation("delete_message", "DELETE", "/threads/{thread_id}/messages/{message_id}"),
        Operation("list_runs", "GET", "/threads/{thread_id}/runs", paged=True),
        Operation("create_run", "POST", "/threads/{thread_id}/runs", streams=True),
        Operation("retrieve_run", "GET", "/threads/{thread_id}/runs/{run_id}"),
        Operation("modify_run", "POST", "/threads/{thread_id}/runs/{run_id}"),
        Operation("cancel_run", "POST", "/threads/{thread_id}/runs/{run_id}/cancel"),
        Operation("list_run_steps", "GET", "/threads/{thread_id}/runs/{run_id}/steps", paged=True),
        Operation("retrieve_run_step", "GET", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}"),
        Operation(
            "submit_tool_outputs",
            "POST",
            "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
            streams=True,
        ),
    )
}


@runtime_checkable
class Backend(Protocol):
    """What the client needs from a backend.

    ``call`` answers with the response's JSON (a dict in the wire shape) or raises an
    :class:`~jupyter_runs.errors.APIError` subclass. ``stream`` is only for operations with
    ``streams=True``; it yields every event, ``done`` included, and ends after ``done``.
    Both are coroutines of the caller's event loop: a backend that lives on another loop (the
    embedded engine) hops there itself.
    """

    async def call(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def stream(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...
