"""Every Assistants operation of the embedded engine: validation, lookups and the store.

Runs themselves are driven by :class:`~.runloop.RunLoop`; this module answers the operations of
:data:`jupyter_runs.backends.OPERATIONS` (one ``_op_<name>`` method each) and hands runs to it.
Errors are :class:`~jupyter_runs.errors.APIError` subclasses with the API's messages, so the
server can send ``to_body()`` as it is.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ...errors import BadRequestError, ConflictError, NotFoundError
from ...wire import Event
from . import objects as obj
from .models import ModelAdapter, resolve_model
from .models.cassette import Cassette, CassetteModel, check_mode
from .runloop import ActiveRun, RunLoop, snapshot
from .store import ACTIVE_STATUSES, Store
from .writes import BUSY_TIMEOUT_MS, retrying

log = logging.getLogger(__name__)

STREAMING_OPS = ("create_run", "create_thread_and_run", "submit_tool_outputs")
#: Run metadata naming the cassette of that run, ``MODE:PATH`` (honoured by in-process engines).
CASSETTE_KEY = "jupyter_runs_cassette"


def _reads_only(op: str) -> bool:
    return op.startswith(("retrieve_", "list_"))


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BadRequestError(f"Missing required path parameter: '{name}'.", param=name)
    return value


class Engine:
    """Every operation of :data:`jupyter_runs.backends.OPERATIONS` over a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        expires_after: float = 600.0,
        model_config: Mapping[str, Any] | None = None,
        cassette: str | os.PathLike[str] | None = None,
        cassette_mode: str = "off",
        run_cassettes: bool = False,
    ) -> None:
        self.store = store
        self.expires_after = expires_after
        self.model_config = dict(model_config or {})
        # Not an adapter setting: the default request budget (tokens, or a mapping by model).
        budget = self.model_config.pop("context_budget", None)
        self._models: dict[str, ModelAdapter] = {}
        # Record/replay (models/cassette.py): the engine's own cassette, and whether a run may name its
        # own in its metadata. Only an in-process engine allows that; a served one must never
        # open a path a remote client chose.
        self.cassette_mode = check_mode(cassette_mode)
        self.cassette = cassette
        self.run_cassettes = run_cassettes
        self._cassettes: dict[str, Cassette] = {}
        self._wrapped: dict[tuple[str, str, str], CassetteModel] = {}
        self.runs = RunLoop(store, expires_after=expires_after, model=self.model,
                            context_budget=budget)
        # Never sleep inside SQLite on the loop: a held lock is waited for by retrying (writes.py).
        store.connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    # -- entry points -----------------------------------------------------------------------

    async def call(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise BadRequestError(f"Unknown operation {op!r}.")
        # Deep copies: the engine must never share a dict with its caller (another thread may
        # mutate it), and what it returns is the caller's to mutate.
        args = (dict(params or {}), copy.deepcopy(dict(body or {})), dict(query or {}))
        result = await self._answer(op, lambda: handler(*args))
        if isinstance(result, ActiveRun):
            return snapshot(result.run)
        return result

    async def stream_batches(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[list[Event]]:
        """Start a streaming operation and yield its events in batches, ending after ``done``."""
        if op not in STREAMING_OPS:
            raise BadRequestError(f"Operation {op!r} does not stream.")
        handler = getattr(self, f"_op_{op}")
        args = (dict(params or {}), copy.deepcopy(dict(body or {})), {})
        active = await self._answer(op, lambda: handler(*args))
        async for batch in active.segment.batches():
            yield batch

    async def _answer(self, op: str, fn: Any) -> Any:
        """Run one operation's handler. Reads go straight through (WAL readers never wait); an
        operation that writes first lets queued run progress land (the file never goes back in
        time), and is retried while another process holds the write lock."""
        if _reads_only(op):
            return fn()
        await self.runs.writes.drain()
        return await retrying(fn)

    def model(self, model_id: str, metadata: Mapping[str, Any] | None = None) -> ModelAdapter:
        """The adapter for a model id, made once and reused (connection pools, test hooks);
        wrapped in a cassette when the engine, or the run's ``metadata``, asks for one."""
        path, mode = self.cassette, self.cassette_mode
        if self.run_cassettes and metadata and metadata.get(CASSETTE_KEY):
            mode, _, path = str(metadata[CASSETTE_KEY]).partition(":")
            mode = check_mode(mode)
        if mode == "off" or not path:
            return self._plain(model_id)
        key = (mode, str(path), model_id)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            cassette = self._cassettes.get(str(path))
            if cassette is None:
                cassette = self._cassettes[str(path)] = Cassette(path)
            # The real adapter is made on first need only: replay never builds one, so it needs
            # neither the network nor an API key.
            wrapped = self._wrapped[key] = CassetteModel(
                model_id, lambda: self._plain(model_id), cassette, mode)
        return wrapped

    def _plain(self, model_id: str) -> ModelAdapter:
        adapter = self._models.get(model_id)
        if adapter is None:
            adapter = self._models[model_id] = resolve_model(model_id, **self.model_config)
        return adapter

    async def aclose(self) -> None:
        """Stop every run (they end ``failed``, interrupted) and close the model adapters."""
        await self.runs.close()
        for adapter in self._models.values():
            try:
                await adapter.aclose()
            except Exception:  # closing must not hide the others
                log.exception("closing model adapter %r failed", adapter)
        self._models.clear()

    # -- lookups ----------------------------------------------------------------------------

    def _assistant(self, assistant_id: Any) -> dict[str, Any]:
        if not isinstance(assistant_id, str) or not assistant_id:
            raise BadRequestError("Missing required parameter: 'assistant_id'.",
                                  param="assistant_id")
        found = self.store.get_assistant(assistant_id)
        if found is None:
            raise NotFoundError(f"No assistant found with id '{assistant_id}'.")
        return found

    def _thread(self, thread_id: str) -> dict[str, Any]:
        found = self.store.get_thread(thread_id)
        if found is None:
            raise NotFoundError(f"No thread found with id '{thread_id}'.")
        return found

    def _run(self, params: Mapping[str, str]) -> dict[str, Any]:
        thread_id, run_id = _param(params, "thread_id"), _param(params, "run_id")
        active = self.runs.active.get(run_id)
        if active is not None and active.run["thread_id"] == thread_id:
            return active.run
        queued = self.runs.writes.pending("run", run_id)  # ended, not yet in the file
        if queued is not None and queued["thread_id"] == thread_id:
            return queued
        found = self.store.get_run(thread_id, run_id)
        if found is None:
            self._thread(thread_id)
            raise NotFoundError(f"No run found with id '{run_id}'.")
        return found

    def _check_no_active_run(self, thread_id: str, doing: str) -> None:
        """Refuse while a run is going on the thread, in this process or (from the store) in
        another; for a new run, call it inside the transaction that writes the run."""
        run_id = self.runs.by_thread.get(thread_id)
        if run_id is None:
            other = self.store.thread_runner(thread_id)
            if other is not None:
                run_id = f"{other[0]} (driven by another process on this store, pid {other[1].partition(':')[0]})"
        if run_id is not None:
            if doing == "run":
                raise BadRequestError(f"thread {thread_id} already has an active run {run_id}")
            raise BadRequestError(f"Can't {doing} {thread_id} while a run {run_id} is active.")

    # -- assistants -------------------------------------------------------------------------

    def _op_create_assistant(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        assistant = obj.new_assistant(body)
        self.store.put_assistant(assistant)
        return assistant

    def _op_retrieve_assistant(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        return self._assistant(_param(params, "assistant_id"))

    def _op_modify_assistant(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        assistant = obj.update_assistant(self._assistant(_param(params, "assistant_id")), body)
        self.store.put_assistant(assistant)
        return assistant

    def _op_delete_assistant(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        assistant_id = self._assistant(_param(params, "assistant_id"))["id"]
        self.store.delete_assistant(assistant_id)
        return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}

    def _op_list_assistants(self, params: Any, body: Any, query: Mapping[str, Any]) -> dict[str, Any]:
        return self.store.list_assistants(**_page(query))

    # -- threads ----------------------------------------------------------------------------

    def _new_thread(self, body: Mapping[str, Any]) -> dict[str, Any]:
        thread = obj.new_thread(body)
        raw = body.get("messages") or []
        if not isinstance(raw, list):
            raise BadRequestError("Invalid 'messages': expected an array.", param="messages")
        messages = [obj.new_message(thread["id"], m, f"messages[{i}]") for i, m in enumerate(raw)]
        with self.store.transaction():
            self.store.put_thread(thread)
            for message in messages:
                self.store.put_message(message)
        return thread

    def _op_list_threads(self, params: Any, body: Any, query: Mapping[str, Any]) -> dict[str, Any]:
        """An extension of ours (the spec has no way to list threads), for ``%runs threads``;
        ``name`` / ``name_prefix`` filter on the thread's name (its ``jupyter_runs_name``
        metadata), so the magic finds a named thread by index."""
        names = {key: _name_filter(query, key) for key in ("name", "name_prefix")}
        return self.store.list_threads(**names, **_page(query))

    def _op_create_thread(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        return self._new_thread(body)

    def _op_retrieve_thread(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        return self._thread(_param(params, "thread_id"))

    def _op_modify_thread(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        thread = self._thread(_param(params, "thread_id"))
        if "metadata" in body:
            thread["metadata"] = obj.check_metadata(body["metadata"])
        if "tool_resources" in body:
            thread["tool_resources"] = dict(body["tool_resources"] or {})
        self.store.put_thread(thread)
        return thread

    def _op_delete_thread(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        thread_id = self._thread(_param(params, "thread_id"))["id"]
        self._check_no_active_run(thread_id, "delete")
        self.store.delete_thread(thread_id)
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    def _op_rewind_thread(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        """Body: ``message_id``, or ``metadata`` ``{key: value}`` naming the earliest message to
        rewind from (the magic's cell key). No match rewinds nothing."""
        thread = self._thread(_param(params, "thread_id"))
        thread_id = thread["id"]
        message_id = body.get("message_id")
        match = body.get("metadata")
        if message_id is None and isinstance(match, dict) and len(match) == 1:
            [(key, value)] = match.items()
            if not (isinstance(key, str) and key.isidentifier() and isinstance(value, str)):
                raise BadRequestError("Invalid 'metadata': one string key and value.", param="metadata")
            message_id = self.store.find_message(thread_id, key, value)
            if message_id is None:
                return {"object": "thread.rewind", "id": thread_id, "history_thread_id": None,
                        "messages": 0, "runs": 0}
        if not isinstance(message_id, str) or not message_id:
            raise BadRequestError("Missing required parameter: 'message_id'.", param="message_id")
        self._check_no_active_run(thread_id, "rewind")
        meta = {"jupyter_runs_history_of": thread_id}
        name = (thread.get("metadata") or {}).get("jupyter_runs_name")
        if name:
            meta["jupyter_runs_history_name"] = name
        history = obj.new_thread({"metadata": meta})
        moved = self.store.rewind_thread(thread_id, message_id, history)
        return {"object": "thread.rewind", "id": thread_id, "history_thread_id": history["id"], **moved}

    def _op_fork_thread(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        """A copy of the thread with its messages, finished runs and steps; body ``metadata``
        for the new thread (default: the original's, with ``jupyter_runs_forked_from``)."""
        thread = self._thread(_param(params, "thread_id"))
        meta = body.get("metadata")
        if meta is None:
            meta = {k: v for k, v in (thread.get("metadata") or {}).items() if k != "jupyter_runs_name"}
            meta["jupyter_runs_forked_from"] = thread["id"]
        fork = obj.new_thread({"metadata": meta, "tool_resources": thread.get("tool_resources")})
        self.store.fork_thread(thread["id"], fork)
        return fork

    # -- messages ---------------------------------------------------------------------------

    def _op_create_message(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        thread_id = self._thread(_param(params, "thread_id"))["id"]
        self._check_no_active_run(thread_id, "add messages to")
        message = obj.new_message(thread_id, body)
        self.store.put_message(message)
        return message

    def _message(self, params: Mapping[str, str]) -> dict[str, Any]:
        thread_id, message_id = _param(params, "thread_id"), _param(params, "message_id")
        run_id = self.runs.by_thread.get(thread_id)
        live = self.runs.active[run_id].message if run_id else None
        if live is not None and live["id"] == message_id:
            return self.runs.live_message(self.runs.active[run_id])
        found = self.store.get_message(thread_id, message_id)
        if found is None:
            self._thread(thread_id)
            raise NotFoundError(f"No message found with id '{message_id}'.")
        return found

    def _op_retrieve_message(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        return self._message(params)

    def _op_modify_message(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        message = self._message(params)
        if message["status"] == "in_progress":
            raise BadRequestError(f"Can't modify message {message['id']} while it is being written.")
        if "metadata" in body:
            message["metadata"] = obj.check_metadata(body["metadata"])
        self.store.put_message(message)
        return message

    def _op_delete_message(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        message = self._message(params)
        if message["status"] == "in_progress":
            raise BadRequestError(f"Can't delete message {message['id']} while it is being written.")
        self.store.delete_message(message["thread_id"], message["id"])
        return {"id": message["id"], "object": "thread.message.deleted", "deleted": True}

    def _op_list_messages(self, params: Any, body: Any, query: Mapping[str, Any]) -> dict[str, Any]:
        thread_id = self._thread(_param(params, "thread_id"))["id"]
        return self.store.list_messages(thread_id, run_id=query.get("run_id"), **_page(query))

    # -- runs -------------------------------------------------------------------------------

    def _op_create_run(self, params: Any, body: dict[str, Any], query: Any) -> ActiveRun:
        thread_id = self._thread(_param(params, "thread_id"))["id"]
        self._check_no_active_run(thread_id, "run")  # fast answer; checked again below
        assistant = self._assistant(body.get("assistant_id"))
        run = obj.new_run(thread_id, assistant, body, self.expires_after)
        extra = body.get("additional_messages") or []
        if not isinstance(extra, list):
            raise BadRequestError("Invalid 'additional_messages': expected an array.",
                                  param="additional_messages")
        messages = [obj.new_message(thread_id, m, f"additional_messages[{i}]")
                    for i, m in enumerate(extra)]
        with self.store.transaction():
            # Inside BEGIN IMMEDIATE: no other process can start a run on this thread between
            # this check and the write.
            self._check_no_active_run(thread_id, "run")
            for message in messages:
                self.store.put_message(message)
            self.store.put_run(run)
        return self.runs.start(run)

    def _op_create_thread_and_run(self, params: Any, body: dict[str, Any], query: Any) -> ActiveRun:
        assistant = self._assistant(body.get("assistant_id"))
        thread_body = body.get("thread") or {}
        if not isinstance(thread_body, Mapping):
            raise BadRequestError("Invalid 'thread': expected an object.", param="thread")
        run = obj.new_run("", assistant, body, self.expires_after)  # validated before any write
        with self.store.transaction():
            thread = self._new_thread(thread_body)
            run["thread_id"] = thread["id"]
            self.store.put_run(run)
        return self.runs.start(run, thread=thread)

    def _op_retrieve_run(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        return snapshot(self._run(params))

    def _op_modify_run(self, params: Any, body: dict[str, Any], query: Any) -> dict[str, Any]:
        run = self._run(params)
        if "metadata" in body:
            run["metadata"] = obj.check_metadata(body["metadata"])
        self.store.put_run(run)
        return snapshot(run)

    def _op_list_runs(self, params: Any, body: Any, query: Mapping[str, Any]) -> dict[str, Any]:
        thread_id = self._thread(_param(params, "thread_id"))["id"]
        page = self.store.list_runs(thread_id, **_page(query))
        page["data"] = [
            snapshot(self.runs.active[r["id"]].run) if r["id"] in self.runs.active else r for r in page["data"]
        ]
        return page

    def _op_cancel_run(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        run = self._run(params)
        active = self.runs.active.get(run["id"])
        if active is None:
            if run["status"] in ACTIVE_STATUSES:
                owner = self.store.run_owner(run["id"])
                if self.store.owner_alive(owner):
                    raise ConflictError(
                        f"Run {run['id']} is {run['status']} in another process (pid "
                        f"{(owner or '').partition(':')[0]}) using this store; only that process "
                        "can cancel it.", code="run_owned_elsewhere")
                # Nothing drives it any more: say so, and free its thread.
                with self.store.transaction():
                    self.store.thread_runner(run["thread_id"])
                return snapshot(self.store.get_run(run["thread_id"], run["id"]) or run)
            raise BadRequestError(f"Cannot cancel run with status '{run['status']}'.")
        self.runs.cancel(active)
        return snapshot(run)

    def _op_submit_tool_outputs(self, params: Any, body: dict[str, Any], query: Any) -> ActiveRun:
        run = self._run(params)
        active = self.runs.active.get(run["id"])
        if active is None or run["status"] != "requires_action" or active.tool_step is None:
            raise BadRequestError(
                f'Runs in status "{run["status"]}" do not accept tool outputs.'
            )
        outputs = body.get("tool_outputs")
        if not isinstance(outputs, list):
            raise BadRequestError("Missing required parameter: 'tool_outputs'.",
                                  param="tool_outputs")
        calls = {c["id"]: c for c in active.tool_step["step_details"]["tool_calls"]}
        given: dict[str, str] = {}
        for i, item in enumerate(outputs):
            if not isinstance(item, Mapping) or not isinstance(item.get("tool_call_id"), str):
                raise BadRequestError(f"Missing required parameter: 'tool_outputs[{i}].tool_call_id'.",
                                      param="tool_outputs")
            if item["tool_call_id"] in given:  # last-wins would drop an output silently
                raise BadRequestError(
                    f"Duplicate tool_call_id '{item['tool_call_id']}' in 'tool_outputs[{i}]'; "
                    "give one output per tool call.", param=f"tool_outputs[{i}].tool_call_id")
            if item["tool_call_id"] not in calls:
                raise BadRequestError(
                    f"No tool call found with id '{item['tool_call_id']}' on run {run['id']}.",
                    param="tool_outputs",
                )
            output = item.get("output")
            if not isinstance(output, str):
                raise BadRequestError(
                    f"Invalid 'tool_outputs[{i}].output': expected a string, got "
                    f"{type(output).__name__}.",
                    param="tool_outputs",
                )
            given[item["tool_call_id"]] = output
        missing = [cid for cid in calls if cid not in given]
        if missing:
            raise BadRequestError(
                f"Expected tool outputs for call_ids {list(calls)}, got {list(given)}.",
                param="tool_outputs",
            )
        self.runs.submit(active, given)
        return active

    # -- steps ------------------------------------------------------------------------------

    def _op_list_run_steps(self, params: Any, body: Any, query: Mapping[str, Any]) -> dict[str, Any]:
        run = self._run(params)
        return self.store.list_steps(run["thread_id"], run["id"], **_page(query))

    def _op_retrieve_run_step(self, params: Any, body: Any, query: Any) -> dict[str, Any]:
        run = self._run(params)
        step_id = _param(params, "step_id")
        active = self.runs.active.get(run["id"])
        if active is not None:
            for live in (active.message_step, active.tool_step, active.reasoning_step):
                if live is not None and live["id"] == step_id:
                    return snapshot(live)
        found = self.store.get_step(run["thread_id"], run["id"], step_id)
        if found is None:
            raise NotFoundError(f"No run step found with id '{step_id}'.")
        return found

def _name_filter(query: Mapping[str, Any], key: str) -> str | None:
    value = query.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise BadRequestError(f"Invalid '{key}': expected a string of at most 512 characters.",
                              param=key)
    return value


def _page(query: Mapping[str, Any]) -> dict[str, Any]:
    return {key: query.get(key) for key in ("limit", "order", "after", "before")}
