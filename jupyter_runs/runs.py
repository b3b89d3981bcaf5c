"""Run and RunStream: the seed's object model (R ``openaiapi``) in Python.

``Run`` polls; ``RunStream`` folds a live event stream. Both perform the tool calls of
``requires_action`` and carry on until the run ends. Each kind of run's life is written once, as a
step function (``Run._poll_steps``, ``RunStream._steps``: a generator that yields what must be
waited for); the async driver awaits each step on the caller's loop, the sync driver does the I/O
on the portal loop but keeps callbacks and tool calls on the *caller's* thread, because user code
is rarely thread-safe (in a notebook that is the kernel's main thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from . import _portal
from .errors import RunError, RunTimeoutError, StreamError
from .events import RunState, fold
from .tools import Namespace, ToolCallRecord, ToolRunner
from .wire import TERMINAL_STATUSES, Assistant, Event, RunStep, Thread, wrap
from .wire import Run as RunObject

if TYPE_CHECKING:
    from .client import AsyncClient, Client

Callback = Callable[[Any], Any]


def _as_async(client: Client | AsyncClient) -> AsyncClient:
    return getattr(client, "_async", client)


def _id(obj: Any) -> str | None:
    return obj if obj is None or isinstance(obj, str) else obj["id"]


def default_env(depth: int = 1) -> Mapping[str, Any]:
    """The namespace tool calls resolve in: IPython's user namespace inside IPython, else the
    globals of the frame ``depth`` levels above the caller. Wrapped in a :class:`Namespace`: a
    default namespace exposes no tool by itself (only ``tools=[f]`` or an explicit ``env`` do)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        shell = None
    if shell is not None:
        return Namespace(shell.user_ns)
    return Namespace(sys._getframe(depth + 1).f_globals)


class Run:
    """A run on a thread. ``Run(client, thread_id, run_id=...)`` retrieves one,
    ``Run(client, thread_id, assistant_id=..., **params)`` creates one. Every field of the run
    object reads as an attribute (``run.status``, ``run.usage``...), from the latest snapshot."""

    def __init__(
        self,
        client: Client | AsyncClient,
        thread_id: Any = None,
        run_id: str | None = None,
        assistant_id: Any = None,
        **params: Any,
    ) -> None:
        self._client = _as_async(client)
        self._data = RunObject()
        thread_id = _id(thread_id)
        if run_id is not None:
            self._set(_portal.call(lambda: self._client.runs._call(
                "retrieve_run", {"thread_id": thread_id, "run_id": run_id})))
        elif assistant_id is not None and thread_id is not None:
            body = {"assistant_id": _id(assistant_id), **params}
            self._set(_portal.call(lambda: self._client.runs._call(
                "create_run", {"thread_id": thread_id}, body=body)))
        else:
            raise TypeError("Run(client, thread_id, run_id=...) or Run(client, thread_id, assistant_id=..., ...)")

    @classmethod
    def _from_data(cls, client: AsyncClient, data: Mapping[str, Any]) -> Run:
        run = cls.__new__(cls)
        run._client = client
        run._data = RunObject()
        run._set(data)
        return run

    def _set(self, data: Mapping[str, Any]) -> None:
        self._data = data if isinstance(data, RunObject) else RunObject(data)

    @property
    def data(self) -> RunObject:
        """The latest run object."""
        return self._data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = self.data
        if name in RunObject.fields or name in data:
            return getattr(data, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.data.get('id')!r}, status={self.data.get('status')!r})"

    def _params(self) -> dict[str, str]:
        return {"thread_id": self.data["thread_id"], "run_id": self.data["id"]}

    def _runner(self, env: Mapping[str, Any] | None, runner: ToolRunner | None) -> ToolRunner:
        if runner is None:
            runner = ToolRunner(env=env, tools=self._client._callables.values())
        # Remembered so cancelling the run also cuts a tool it is running (Stop during a tool).
        self.__dict__.setdefault("_tool_runners", weakref.WeakSet()).add(runner)
        return runner

    def _cut_tools(self) -> None:
        for runner in list(self.__dict__.get("_tool_runners", ())):
            runner.cancel("stopped")

    async def _stopped_async(self) -> None:
        """Tools were cut by Stop or an interrupt: cancel the run (never submit what was cut),
        then take its stored end state, so the run always ends ``cancelled``."""
        await self._cancel_quietly()
        self._set(await self._client.runs._call("retrieve_run", self._params()))
        for _ in range(200):  # a cancel unwinds on the engine's loop; it ends within a few polls
            if self.data["status"] in TERMINAL_STATUSES:
                return
            await asyncio.sleep(0.05)
            self._set(await self._client.runs._call("retrieve_run", self._params()))

    # -- retrieve / modify / cancel ----------------------------------------------------------
    async def retrieve_async(self) -> Run:
        self._set(await self._client.runs._call("retrieve_run", self._params()))
        return self

    def retrieve(self) -> Run:
        """Fetch the run's latest state."""
        return _portal.call(self.retrieve_async)

    def retrieve_status(self) -> str:
        """The run's up-to-date status."""
        return self.retrieve().data["status"]

    async def modify_async(self, **params: Any) -> Run:
        self._set(await self._client.runs._call("modify_run", self._params(), body=params))
        return self

    def modify(self, **params: Any) -> Run:
        """Modify the run (its ``metadata``)."""
        return _portal.call(lambda: self.modify_async(**params))

    async def cancel_async(self) -> Run:
        self._cut_tools()
        self._set(await self._client.runs._call("cancel_run", self._params()))
        return self

    def cancel(self) -> Run:
        """Cancel the run (it passes through ``cancelling`` to ``cancelled``)."""
        return _portal.call(self.cancel_async)

    async def list_steps_async(self, **query: Any) -> list[RunStep]:
        return await self._client.steps.list(self.data["thread_id"], self.data["id"], **query).to_list()

    def list_steps(self, **query: Any) -> list[RunStep]:
        """All steps of the run (every page)."""
        return _portal.call(lambda: self.list_steps_async(**query))

    def thread(self) -> Thread:
        """The run's thread."""
        return _portal.call(lambda: self._client.threads.retrieve(self.data["thread_id"]))

    def assistant(self) -> Assistant:
        """The run's assistant."""
        return _portal.call(lambda: self._client.assistants.retrieve(self.data["assistant_id"]))

    # -- tool calls ---------------------------------------------------------------------------
    def _pending_calls(self) -> list[dict[str, Any]]:
        action = self.data.get("required_action") or {}
        return list((action.get("submit_tool_outputs") or {}).get("tool_calls") or [])

    def do_tool_calls(
        self, env: Mapping[str, Any] | None = None, *, runner: ToolRunner | None = None
    ) -> list[dict[str, str]]:
        """Run the pending tool calls (on this thread) and return the tool outputs to submit."""
        env = env if env is not None else default_env()
        records = self._runner(env, runner).run_sync(self.data, self._pending_calls())
        return [r.to_output() for r in records]

    async def do_tool_calls_async(
        self, env: Mapping[str, Any] | None = None, *, runner: ToolRunner | None = None
    ) -> list[dict[str, str]]:
        env = env if env is not None else default_env()
        records = await self._runner(env, runner).run_async(self.data, self._pending_calls())
        return [r.to_output() for r in records]

    async def submit_tool_outputs_async(
        self, tool_outputs: list[Mapping[str, Any]], stream: bool = False
    ) -> Run | RunStream:
        if stream:
            params, backend = self._params(), self._client.backend
            body = {"tool_outputs": list(tool_outputs), "stream": True}
            return RunStream(self._client, params["thread_id"], opener=lambda: backend.stream(
                "submit_tool_outputs", params, body=body))
        self._set(await self._client.runs._call(
            "submit_tool_outputs", self._params(), body={"tool_outputs": list(tool_outputs)}))
        return self

    def submit_tool_outputs(self, tool_outputs: list[Mapping[str, Any]], stream: bool = False) -> Run | RunStream:
        """Submit tool outputs; ``stream=True`` returns a :class:`RunStream` of the continuation."""
        return _portal.call(lambda: self.submit_tool_outputs_async(tool_outputs, stream))

    # -- waiting ------------------------------------------------------------------------------
    def _interval(self, response: Any, poll_interval: float | None) -> float:
        if poll_interval is not None:
            return poll_interval
        headers = getattr(response, "headers", None) or {}
        ms = headers.get("openai-poll-after-ms")
        if ms:
            try:
                return int(ms) / 1000
            except ValueError:
                pass
        return float(getattr(self._client.backend, "poll_interval", 1.0))

    async def _poll(self, deadline: float | None, poll_interval: float | None) -> None:
        """Poll until the run requires action or ends; raise RunTimeoutError past the deadline."""
        while True:
            response = await self._client.backend.call("retrieve_run", self._params())
            self._set(response)
            status = self.data["status"]
            if status == "requires_action" or status in TERMINAL_STATUSES:
                return
            delay = self._interval(response, poll_interval)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunTimeoutError(
                        f"run {self.data['id']} on {self.data['thread_id']} still {status} after the timeout",
                        run=self.data, status=status,
                    )
                delay = min(delay, left)
            await asyncio.sleep(delay)

    def _finish(self) -> Run:
        if self.data["status"] == "completed":
            return self
        raise RunError.from_run(self.data)

    def wait(self, env: Mapping[str, Any] | None = None, timeout: float | None = None, *,
             poll_interval: float | None = None, runner: ToolRunner | None = None) -> Run:
        """Poll until the run ends, doing its tool calls from ``env`` on this thread.

        Returns the run when ``completed``; raises :class:`RunError` for failed, cancelled, expired
        and incomplete runs, :class:`RunTimeoutError` when ``timeout`` seconds pass first. Ctrl-C
        cancels the run.
        """
        runner = self._runner(env if env is not None else default_env(), runner)
        steps = self._poll_steps(runner, None if timeout is None else time.monotonic() + timeout, poll_interval)
        try:
            self._run_sync(steps)
        except KeyboardInterrupt:
            self._cancel_quietly_sync()
            raise
        return self._finish()

    async def wait_async(self, env: Mapping[str, Any] | None = None, timeout: float | None = None, *,
                         poll_interval: float | None = None, runner: ToolRunner | None = None) -> Run:
        """``wait`` as a coroutine (the seed's ``await``), tool calls on the caller's loop."""
        runner = self._runner(env if env is not None else default_env(), runner)
        await self._run_async(self._poll_steps(runner, None if timeout is None else time.monotonic() + timeout,
                                               poll_interval))
        return self._finish()

    # -- the step machinery both kinds of driver share ------------------------------------------
    def _poll_steps(self, runner: ToolRunner, deadline: float | None,
                    poll_interval: float | None) -> Generator[_Step, Any, None]:
        """A polled run's life for either driver: poll to ``requires_action`` or the end, do the
        tool calls, submit their outputs (or cancel, after Stop), again."""
        while True:
            yield _CALL, functools.partial(self._poll, deadline, poll_interval)
            if self.data["status"] != "requires_action":
                return
            records = yield _TOOLS, runner
            if runner.stopped:
                yield _CALL, self._stopped_async
                return
            yield _CALL, functools.partial(self.submit_tool_outputs_async, [r.to_output() for r in records])

    async def _run_async(self, steps: Generator[_Step, Any, None],
                         handlers: Mapping[str, Callback | None] | None = None) -> None:
        """Drive ``steps`` on the caller's loop, sending each step's result back."""
        reply = None
        while (step := _next(steps, reply)) is not None:
            reply = await self._wait_async(step, handlers or {})

    def _run_sync(self, steps: Generator[_Step, Any, None],
                  handlers: Mapping[str, Callback | None] | None = None) -> None:
        """Drive ``steps`` from a blocking caller: I/O on the portal loop, the rest on this thread."""
        reply = None
        while (step := _next(steps, reply)) is not None:
            reply = self._wait_sync(step, handlers or {})

    async def _wait_async(self, step: _Step, handlers: Mapping[str, Callback | None]) -> Any:
        what, arg = step
        if what == _TOOLS:
            return await arg.run_async(self.data, self._pending_calls())
        return await arg()  # _CALL

    def _wait_sync(self, step: _Step, handlers: Mapping[str, Callback | None]) -> Any:
        what, arg = step
        if what == _TOOLS:
            return arg.run_sync(self.data, self._pending_calls())
        return _portal.call(arg)  # _CALL

    def _cancel_quietly_sync(self) -> None:
        if self.data.get("id") and self.data.get("status") not in TERMINAL_STATUSES:
            try:
                self.cancel()
            except Exception:
                pass

    async def _cancel_quietly(self) -> None:
        if self.data.get("id") and self.data.get("status") not in TERMINAL_STATUSES:
            try:
                await self.cancel_async()
            except Exception:
                pass


_ASYNC_CALLBACK = ("callback {name} is async, but until_done() calls callbacks synchronously and "
                   "would never await it; use `await stream.stream_async(...)`, or a plain function")


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(vars(type(fn)).get("__call__"))


_STEP_ENDS = ("completed", "failed", "cancelled", "expired")

#: What a step (of ``Run._poll_steps`` or ``RunStream._steps``) asks its driver to wait for.
_STREAM, _TOOLS, _CALL, _DRAIN = "stream", "tools", "call", "drain"
_Step = tuple[str, Any]


def _next(steps: Generator[_Step, Any, None], reply: Any) -> _Step | None:
    """The next step, given the last one's result; None once the steps are done."""
    try:
        return steps.send(reply)
    except StopIteration:
        return None


_HANDLERS = ("on_event", "on_message_delta", "on_message", "on_run_step_delta", "on_run_step", "on_tool_call")


class RunStream(Run):
    """A streamed run: events are folded into ``state`` as they arrive and handed to callbacks.

    The request opens when the stream is consumed (``until_done``, ``stream_async``, iteration).
    After ``thread.run.requires_action`` the tool calls are done and the run continues through
    ``submit_tool_outputs(stream=True)`` until it ends. A callback that raises stops the stream with
    that exception and the run is cancelled.
    """

    def __init__(
        self,
        client: Client | AsyncClient,
        thread_id: str | None,
        opener: Callable[[], AsyncIterator[Event]],
    ) -> None:
        self._client = _as_async(client)
        self._thread_id = thread_id
        self._opener: Callable[[], AsyncIterator[Event]] | None = opener
        self.state = RunState()
        self._finished: concurrent.futures.Future[RunObject] | None = None
        self._driver_thread: threading.Thread | None = None
        self._driver_is_async = False
        self._awaiting: list[Any] = []  # results of async callbacks, awaited before the next event

    @property
    def data(self) -> RunObject:
        run = self.state.run
        if run is None:
            return RunObject({"thread_id": self._thread_id} if self._thread_id else {})
        return run if isinstance(run, RunObject) else RunObject(run)

    def _set(self, data: Mapping[str, Any]) -> None:
        # A late cancel reply ("cancelling") must not undo the stream's end; a fresher object of
        # an ended run (retrieve, modify) replaces the stream's snapshot.
        ended = (self.state.run or {}).get("status") in TERMINAL_STATUSES
        if not ended or data.get("status") in TERMINAL_STATUSES:
            self.state.run = dict(data)

    @property
    def event_data(self) -> dict[str, Any]:
        """Thread, run, messages and steps accumulated from the stream (the seed's ``event_data``)."""
        return {
            "thread": wrap(self.state.thread) if self.state.thread else None,
            "run": self.data,
            "messages": [wrap(m) for m in self.state.messages.values()],
            "steps": [wrap(s) for s in self.state.steps.values()],
        }

    @property
    def thread_id(self) -> str | None:
        return self.data.get("thread_id") or self._thread_id

    # -- the shared per-event work -----------------------------------------------------------
    def _handle(self, event: Event, handlers: Mapping[str, Callback | None]) -> None:
        name, data = event.event, event.data
        if name == "error":
            err = data.get("error", data) if isinstance(data, dict) else {}
            raise StreamError(f"error event: {err.get('message', data)}", code=err.get("code"), event=name, data=data)
        touched = fold(self.state, name, data)
        if handlers.get("on_event"):
            self._call(handlers["on_event"], event)
        if touched is None:
            return
        if name == "thread.message.delta":
            if handlers.get("on_message_delta"):
                self._call(handlers["on_message_delta"], wrap(data))
        elif name == "thread.run.step.delta":
            if handlers.get("on_run_step_delta"):
                self._call(handlers["on_run_step_delta"], wrap(data))
        elif name.startswith("thread.message."):
            if handlers.get("on_message"):
                self._call(handlers["on_message"], wrap(touched))
        elif name.startswith("thread.run.step."):
            if handlers.get("on_run_step"):
                self._call(handlers["on_run_step"], wrap(touched))

    def _call(self, handler: Callback, arg: Any) -> None:
        """Call a callback; an ``async def`` one is awaited by ``stream_async`` (in event order,
        before the next event), and refused by the sync drivers, which have no loop to run it."""
        result = handler(arg)
        if inspect.isawaitable(result):
            if self._driver_is_async:
                self._awaiting.append(result)
                return
            if inspect.iscoroutine(result):
                result.close()  # never awaited: say so here rather than in a RuntimeWarning
            raise TypeError(_ASYNC_CALLBACK.format(name=_callable_name(handler)))

    async def _drain(self) -> None:
        while self._awaiting:
            await self._awaiting.pop(0)

    def _refuse_async_callbacks(self, handlers: Mapping[str, Callback | None]) -> None:
        for key, handler in handlers.items():
            if handler is not None and _is_async_callable(handler):
                raise TypeError(_ASYNC_CALLBACK.format(name=f"{key}={_callable_name(handler)}"))

    def _stopped_meanwhile(self) -> bool:
        """Cancelled (e.g. Stop) while its tool calls ran or waited for approval: submitting
        the outputs would be refused ("Runs in status cancelled do not accept tool outputs")."""
        return self.data.get("status") in ("cancelling", "cancelled")

    async def _follow_cancel(self) -> list[dict[str, Any]]:
        """Poll a cancelled run to its end state (``cancelling`` -> ``cancelled``), bounded;
        return its steps as stored then (the tool-call step ended with the run)."""
        for _ in range(600):
            if self.data.get("status") in TERMINAL_STATUSES:
                break
            await asyncio.sleep(0.1)
            self._set(await self._client.runs._call("retrieve_run", self._params()))
        try:
            return [dict(s) for s in await self.list_steps_async(order="asc")]
        except Exception:  # the end state matters more than the steps' last word
            return []

    def _report_end(self, records: list[ToolCallRecord], steps: list[dict[str, Any]],
                    handlers: Mapping[str, Callback | None]) -> None:
        """What happened after the stream closed at ``requires_action``, reported like streamed
        events: the tool records, the steps that ended with the run, the run's end state."""
        if handlers.get("on_tool_call"):
            for record in records:
                self._call(handlers["on_tool_call"], record)
        for step in steps:
            known = self.state.steps.get(step.get("id"), {})
            if step.get("status") in _STEP_ENDS and known.get("status") != step.get("status"):
                self._handle(Event(f"thread.run.step.{step['status']}", step), handlers)
        status = self.data.get("status")
        if status in TERMINAL_STATUSES:
            self._handle(Event(f"thread.run.{status}", dict(self.data)), handlers)

    def _report(self, records: list[ToolCallRecord], handlers: Mapping[str, Callback | None]) -> None:
        if handlers.get("on_tool_call"):
            for record in records:
                self._call(handlers["on_tool_call"], record)

    def _continuation(self, records: list[ToolCallRecord], handlers: Mapping[str, Callback | None]) -> None:
        self._report(records, handlers)
        params, backend = self._params(), self._client.backend
        body = {"tool_outputs": [r.to_output() for r in records], "stream": True}
        self._opener = lambda: backend.stream("submit_tool_outputs", params, body=body)

    def _claim(self, is_async: bool) -> concurrent.futures.Future[RunObject]:
        if self._finished is not None:
            raise RuntimeError("this RunStream is already being consumed; use wait_async() / wait() to await it")
        self._finished = concurrent.futures.Future()
        self._driver_thread = threading.current_thread()
        self._driver_is_async = is_async
        return self._finished

    def _start(
        self, is_async: bool, callbacks: tuple[Callback | None, ...], env: Mapping[str, Any] | None,
        runner: ToolRunner | None,
    ) -> tuple[dict[str, Callback | None], Generator[_Step, Any, None], concurrent.futures.Future[RunObject]]:
        """What both drivers do before the first event: name the handlers (the sync driver
        refuses async ones at once), pick the runner, claim the stream, make its steps."""
        handlers = dict(zip(_HANDLERS, callbacks))
        if not is_async:
            self._refuse_async_callbacks(handlers)
        runner = self._runner(env if env is not None else default_env(2), runner)
        finished = self._claim(is_async)
        return handlers, self._steps(runner, handlers), finished

    # -- the one step function both drivers run ------------------------------------------------
    def _steps(self, runner: ToolRunner, handlers: Mapping[str, Callback | None]) -> Generator[_Step, Any, None]:
        """The stream's life for either driver: open, fold the events, do the tool calls of
        ``requires_action``, then continue, or end the run when Stop came meanwhile. Each yield
        names what must be waited for; the driver waits its own way (awaiting on its loop, or on
        the portal loop with callbacks and tools kept on the caller's thread) and sends back the
        result."""
        while self._opener is not None:
            opener, self._opener = self._opener, None
            yield _STREAM, opener
            if self.data.get("status") != "requires_action":
                return
            records = yield _TOOLS, runner
            if runner.stopped or self._stopped_meanwhile():
                # Stop came while the tools ran or waited for approval: never submit; cancel (if
                # the run is not cancelling already) and report the stored end, the steps that
                # ended with it included, as the stream would have.
                if runner.stopped:
                    yield _CALL, self._stopped_async
                self._report_end(records, (yield _CALL, self._follow_cancel), handlers)
                self._handle(Event("done", "[DONE]"), handlers)
            else:
                self._continuation(records, handlers)  # sets the opener: the loop goes on
            yield _DRAIN, None

    async def _wait_async(self, step: _Step, handlers: Mapping[str, Callback | None]) -> Any:
        """Streams and drains here; async callbacks are awaited in event order."""
        what, arg = step
        if what == _STREAM:
            events = arg()
            try:
                async for event in events:
                    self._handle(event, handlers)
                    if self._awaiting:
                        await self._drain()
            finally:
                await events.aclose()
        elif what == _DRAIN:
            await self._drain()
        else:
            return await super()._wait_async(step, handlers)
        return None

    def _wait_sync(self, step: _Step, handlers: Mapping[str, Callback | None]) -> Any:
        """Streams here; nothing to drain, since the sync driver refuses async callbacks."""
        what, arg = step
        if what == _STREAM:
            events = _portal.iterate(arg)
            try:
                for event in events:
                    self._handle(event, handlers)
            finally:
                events.close()
        elif what != _DRAIN:
            return super()._wait_sync(step, handlers)
        return None

    async def _drive_async(self, handlers: Mapping[str, Callback | None], steps: Generator[_Step, Any, None],
                           finished: concurrent.futures.Future[RunObject]) -> RunObject:
        try:
            await self._run_async(steps, handlers)
        except BaseException as exc:
            await self._cancel_quietly()
            finished.set_exception(exc)
            raise
        finished.set_result(self.data)
        return self.data

    def _drive_sync(self, handlers: Mapping[str, Callback | None], steps: Generator[_Step, Any, None],
                    finished: concurrent.futures.Future[RunObject]) -> RunObject:
        try:
            self._run_sync(steps, handlers)
        except BaseException as exc:
            self._cancel_quietly_sync()
            finished.set_exception(exc)
            raise
        finished.set_result(self.data)
        return self.data

    # -- drivers ------------------------------------------------------------------------------
    async def stream_async(self, on_message_delta: Callback | None = None, on_message: Callback | None = None,
                           on_run_step_delta: Callback | None = None, on_run_step: Callback | None = None,
                           on_event: Callback | None = None, env: Mapping[str, Any] | None = None, *,
                           on_tool_call: Callback | None = None, runner: ToolRunner | None = None) -> RunObject:
        """Stream the run on the caller's loop; tool calls run there too. Returns the final run."""
        callbacks = (on_event, on_message_delta, on_message, on_run_step_delta, on_run_step, on_tool_call)
        return await self._drive_async(*self._start(True, callbacks, env, runner))

    def until_done(self, on_message_delta: Callback | None = None, on_message: Callback | None = None,
                   on_run_step_delta: Callback | None = None, on_run_step: Callback | None = None,
                   on_event: Callback | None = None, env: Mapping[str, Any] | None = None, *,
                   on_tool_call: Callback | None = None, runner: ToolRunner | None = None) -> RunObject:
        """Stream the run to its end, blocking; callbacks and tool calls run on this thread (an
        async callback is refused: there is no loop here to await it)."""
        callbacks = (on_event, on_message_delta, on_message, on_run_step_delta, on_run_step, on_tool_call)
        return self._drive_sync(*self._start(False, callbacks, env, runner))

    def __iter__(self):
        """Iterate the raw events of the stream (no tool calls are made: submit them yourself)."""
        opener, self._opener = self._opener, None
        if opener is None:
            raise RuntimeError("this RunStream was already consumed")
        for event in _portal.iterate(opener):
            self._handle(event, {})
            yield event

    async def __aiter__(self):
        opener, self._opener = self._opener, None
        if opener is None:
            raise RuntimeError("this RunStream was already consumed")
        events = opener()
        try:
            async for event in events:
                self._handle(event, {})
                yield event
        finally:
            await events.aclose()

    async def wait_async(
        self,
        env: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Run:
        """Wait for the run's end: join the driver that is streaming it (e.g. the magic's
        background task), or stream it here. Raises :class:`RunError` unless it completed."""
        if self._finished is None:
            env = env if env is not None else default_env()
            await asyncio.wait_for(self.stream_async(env=env, **kwargs), timeout)
        else:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._finished)), timeout)
        return self._finish()

    def wait(self, env: Mapping[str, Any] | None = None, timeout: float | None = None, **kwargs: Any) -> Run:
        """Block until the run ends. If the stream is being driven by a task on *this* thread's
        event loop (a background run in the notebook), blocking would stall that task forever,
        so this raises at once and says to ``await stream.wait_async()`` instead."""
        if self._finished is None:
            env = env if env is not None else default_env()
            self.until_done(env=env, **kwargs)
            return self._finish()
        if self._driver_is_async and self._driver_thread is threading.current_thread() and not self._finished.done():
            raise RuntimeError(
                "this run is streaming in the background on this kernel's event loop; a blocking "
                "wait() here would stop it. Use `await run.wait_async()` in the cell instead."
            )
        try:
            self._finished.result(timeout)
        except concurrent.futures.TimeoutError:
            raise RunTimeoutError(f"run {self.data.get('id')} still {self.data.get('status')} after the timeout",
                                  run=self.data, status=self.data.get("status")) from None
        except BaseException:
            pass  # the driver's error was raised there; report the run's end state here
        return self._finish()

    @property
    def done(self) -> bool:
        return self._finished is not None and self._finished.done()
