"""The run state machine: one asyncio task per run, turning model output into wire events.

A run is driven by its own task, independent of whoever asked for it: polling works, and a stream
consumer that goes away does not stop the run. The task's events go into the run's current
*segment* (from a create or submit_tool_outputs up to ``done``); a stream subscribes to a segment
from its first event, so a consumer that attaches late still sees everything of that segment.

Transitions (the spec's)::

    queued -> in_progress -> (requires_action -> queued -> in_progress)*
           -> completed | incomplete | failed | cancelled (via cancelling) | expired

Events follow the spec's example streams: run.created, run.queued, run.in_progress,
step.created, step.in_progress, message.created, message.in_progress, message.delta...,
message.completed, step.completed, ..., run.completed, done. Messages and steps are written to
the store when they complete, together with the run, in one transaction.

Everything here runs on one event loop (the portal loop, see ``backend.py``); the store is
synchronous and only touched from that loop, so no locks are needed. A run's progress is written
through :class:`~.writes.WriteQueue`, so a store whose write lock another process holds never
stalls the loop, fails a run, or leaves its thread taken (see ``writes.py``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import APIError, ModelError
from ...wire import Event
from . import objects as obj
from .conversation import Shares, default_budget, estimate_tokens, recent_groups, truncate
from .models import (
    Finish,
    ModelAdapter,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
    split_model_id,
)
from .models.scripted import count_tokens, prompt_tokens
from .store import INTERRUPTED_ERROR, Store
from .writes import StoreBusyError, WriteQueue

log = logging.getLogger(__name__)


class Segment:
    """The events of one stretch of a run, up to ``done``, kept so late subscribers miss none."""

    __slots__ = ("events", "closed", "_waiters")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def push(self, event: Event) -> None:
        self.events.append(event)
        if event.event == "done":
            self.closed = True
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def batches(self) -> AsyncIterator[list[Event]]:
        """Every event from the first, handed over in batches of whatever is ready (cheap per
        event when the producer is faster than the consumer)."""
        events = self.events
        i = 0
        while True:
            n = len(events)
            if i < n:
                batch = events[i:n]
                i = n
                yield batch
                continue
            if self.closed:
                return
            # One future per waiter: a consumer that is cancelled cancels only its own.
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


@dataclass
class ActiveRun:
    """What the engine holds for a run that is not finished yet."""

    run: dict[str, Any]
    segment: Segment = field(default_factory=Segment)
    task: asyncio.Task[None] | None = None
    started: bool = False
    stop: str | None = None  # "cancel" | "shutdown": why the task was cancelled
    outputs: asyncio.Future[None] | None = None
    message: dict[str, Any] | None = None  # the reply being streamed
    text: list[str] = field(default_factory=list)
    message_step: dict[str, Any] | None = None
    tool_step: dict[str, Any] | None = None
    tool_usage: dict[str, int] | None = None  # the spec shows step usage only once it is done
    call_index: int = 0
    prompt_used: int = 0
    completion_used: int = 0
    reasoning_step: dict[str, Any] | None = None  # the reasoning summary being streamed
    reasoning_part: int = 0
    reasoning_used: int = 0  # of completion_used
    cached_used: int = 0  # of prompt_used

    @property
    def id(self) -> str:
        return self.run["id"]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _reasoned(usage: dict[str, Any], reasoning_tokens: int) -> dict[str, Any]:
    if reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage


def _run_usage(active: ActiveRun) -> dict[str, Any]:
    """The run's usage; the detail objects (the names Chat Completions and openai-python use)
    only when a model reported reasoning or cached tokens, so other runs keep the spec's shape."""
    usage: dict[str, Any] = _usage(active.prompt_used, active.completion_used)
    if active.cached_used:
        usage["prompt_tokens_details"] = {"cached_tokens": active.cached_used}
    if active.reasoning_used:
        usage["completion_tokens_details"] = {"reasoning_tokens": active.reasoning_used}
    return usage


def snapshot(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value)


class RunLoop:
    """Starts, drives, cancels and finishes runs; ``active`` holds the runs not finished yet."""

    def __init__(
        self, store: Store, *, expires_after: float, model: Callable[..., ModelAdapter],
        context_budget: int | Mapping[str, int] | None = None,
    ) -> None:
        self.store = store
        self.context_budget = context_budget  # per-model default request budgets (conversation.py)
        self.expires_after = expires_after
        self.model = model
        self.active: dict[str, ActiveRun] = {}
        self.by_thread: dict[str, str] = {}  # thread id -> its active run's id
        self.writes = WriteQueue(store)

    def start(self, run: dict[str, Any], thread: dict[str, Any] | None = None) -> ActiveRun:
        """Take over a queued run (already stored): emit its first events, start its task."""
        active = ActiveRun(run)
        self.active[run["id"]] = active
        self.by_thread[run["thread_id"]] = run["id"]
        if thread is not None:
            self._emit(active, "thread.created", snapshot(thread))
        self._emit(active, "thread.run.created", snapshot(run))
        self._emit(active, "thread.run.queued", snapshot(run))
        active.task = asyncio.get_running_loop().create_task(
            self._drive(active), name=f"jupyter-runs {run['id']}"
        )
        return active

    def cancel(self, active: ActiveRun) -> None:
        """Ask a run to stop; it ends ``cancelled`` as soon as its task unwinds."""
        run = active.run
        if run["status"] == "cancelling":
            return
        run["status"] = "cancelling"
        self._emit(active, "thread.run.cancelling", snapshot(run))
        active.stop = "cancel"
        if active.task is not None:
            active.task.cancel()
        if not active.started:  # cancelled before its task ran: nothing to unwind
            self._cancelled(active)

    def submit(self, active: ActiveRun, outputs: dict[str, str]) -> None:
        """Record the tool outputs (already validated: one per call) and let the run go on."""
        assert active.tool_step is not None
        # Written from copies before anything changes here: a busy store raises, and the
        # operation is retried from the start (see writes.retrying).
        step, run = snapshot(active.tool_step), snapshot(active.run)
        for call in step["step_details"]["tool_calls"]:
            call["function"]["output"] = outputs[call["id"]]
        step.update(status="completed", completed_at=obj.now(), usage=active.tool_usage)
        run.update(status="queued", required_action=None)
        with self.store.transaction():
            self.store.put_step(step)
            self.store.put_run(run)
        active.tool_step.clear()
        active.tool_step.update(step)
        active.run.clear()
        active.run.update(run)
        step, run = active.tool_step, active.run
        active.tool_step = None
        active.segment = Segment()
        self._emit(active, "thread.run.step.completed", snapshot(step))
        self._emit(active, "thread.run.queued", snapshot(run))
        if active.outputs is not None and not active.outputs.done():
            active.outputs.set_result(None)

    async def close(self) -> None:
        """Stop every run; they end ``failed`` (interrupted), as after a crash."""
        tasks = []
        for active in list(self.active.values()):
            active.stop = "shutdown"
            if active.task is not None and not active.task.done():
                active.task.cancel()
                tasks.append(active.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for active in list(self.active.values()):  # never started: finish them here
            self._fail(active, INTERRUPTED_ERROR["code"], INTERRUPTED_ERROR["message"])
        self.writes.flush_now()

    def _emit(self, active: ActiveRun, name: str, data: Any) -> None:
        if active.segment.closed:  # e.g. a cancel while waiting for tool outputs
            active.segment = Segment()
        active.segment.push(Event(name, data))

    async def _drive(self, active: ActiveRun) -> None:
        active.started = True
        try:
            await self._advance(active)
        except asyncio.CancelledError:
            if active.stop == "cancel":
                self._cancelled(active)
            else:
                self._fail(active, INTERRUPTED_ERROR["code"], INTERRUPTED_ERROR["message"])
        except ModelError as exc:
            self._fail(active, exc.code, exc.message)
        except StoreBusyError as exc:
            self._fail(active, "server_error", exc.message)
        except APIError as exc:
            self._fail(active, "invalid_prompt", exc.message)
        except Exception as exc:
            log.exception("run %s failed", active.id)
            self._fail(active, "server_error", f"internal error: {type(exc).__name__}: {exc}")

    async def _advance(self, active: ActiveRun) -> None:
        run = active.run
        while True:
            run["status"] = "in_progress"
            run["started_at"] = run["started_at"] or obj.now()
            self.writes.put(("run", run))
            self._emit(active, "thread.run.in_progress", snapshot(run))
            if not await self._model_turn(active):
                return
            self._require_action(active)
            active.outputs = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(active.outputs, self.expires_after)
            except asyncio.TimeoutError:
                self._expire(active)
                return

    def _request(self, active: ActiveRun) -> ModelRequest | None:
        """The next model call, or ``None`` when the run ran out of prompt tokens."""
        run = active.run
        store = self.store
        system = [{"role": "system", "content": run["instructions"]}] if run["instructions"] else []
        strategy = run["truncation_strategy"] or {"type": "auto"}
        if run["max_prompt_tokens"] is not None:
            budget, hard = run["max_prompt_tokens"] - active.prompt_used, True
        else:
            budget, hard = default_budget(run["model"], self.context_budget), False
        keep = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
        fixed = estimate_tokens(system)

        def enough(groups: list[Any]) -> bool:
            if keep and sum(g.is_thread_message for g in groups) > keep:
                return True
            return fixed + sum(g.size(estimate_tokens) for g in groups) > budget

        groups = recent_groups(
            lambda limit, offset: store.recent_messages(run["thread_id"], limit, offset),
            store.run_steps, run["id"], enough, Shares.of(budget),
        )
        chat = truncate(system, groups, strategy, budget, estimate_tokens, hard=hard)
        if chat is None:
            return None
        tools = [{"type": "function", "function": t["function"]}
                 for t in run["tools"] if t.get("type") == "function"]
        choice = run["tool_choice"]
        if active.call_index > 0 and choice not in ("none", "auto"):
            choice = "auto"  # forcing a tool again after its output would loop forever
        max_tokens = None
        if run["max_completion_tokens"] is not None:
            max_tokens = run["max_completion_tokens"] - active.completion_used
        fmt = run["response_format"]
        return ModelRequest(
            model=split_model_id(run["model"])[1],
            messages=chat,
            tools=tools,
            tool_choice=choice if tools else None,
            parallel_tool_calls=run["parallel_tool_calls"] if tools else None,
            temperature=run["temperature"],
            top_p=run["top_p"],
            max_tokens=max_tokens,
            response_format=None if fmt == "auto" else fmt,
            run_id=run["id"],
            call_index=active.call_index,
        )

    async def _model_turn(self, active: ActiveRun) -> bool:
        """One model call, streamed into events. True when it ended in tool calls."""
        run = active.run
        if run["max_completion_tokens"] is not None and (
            active.completion_used >= run["max_completion_tokens"]
        ):
            self._end(active, "incomplete", incomplete_details={"reason": "max_completion_tokens"})
            return False
        await self.writes.drain()  # the conversation must include this run's queued writes
        request = self._request(active)
        if request is None:
            self._end(active, "incomplete", incomplete_details={"reason": "max_prompt_tokens"})
            return False
        model = self.model(run["model"], run.get("metadata"))
        active.call_index += 1
        calls: list[dict[str, Any]] = []
        slots: dict[int, int] = {}  # the model's call index -> position in ``calls``
        minted: set[int] = set()  # positions whose id the engine made up
        usage: Usage | None = None
        finish = "stop"
        stream = model.stream(request)
        try:
            async for item in stream:
                kind = type(item)
                if kind is TextDelta:
                    if not item.text:  # e.g. the role-only first chunk of Chat Completions
                        continue
                    if active.reasoning_step is not None:
                        self._close_reasoning(active)
                    if active.message is None:
                        self._open_message(active)
                    self._text_delta(active, item.text)
                elif kind is ReasoningDelta:
                    if item.text:
                        self._reasoning_delta(active, item)
                elif kind is ToolCallDelta:
                    if active.reasoning_step is not None:
                        self._close_reasoning(active)
                    self._tool_delta(active, item, calls, slots, minted)
                elif kind is Usage:
                    usage = item
                elif kind is Finish:
                    finish = item.reason
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        if active.reasoning_step is not None:
            self._close_reasoning(active)
        if usage is None:  # estimate, so runs always report usage
            completion = count_tokens("".join(active.text)) + sum(
                count_tokens(c["function"]["arguments"]) + 1 for c in calls
            )
            usage = Usage(prompt_tokens(request.messages), completion)
        active.prompt_used += usage.prompt_tokens
        active.completion_used += usage.completion_tokens
        active.reasoning_used += usage.reasoning_tokens
        active.cached_used += usage.cached_tokens
        run["usage"] = _run_usage(active)
        thought = usage.reasoning_tokens
        over = (run["max_completion_tokens"] is not None
                and active.completion_used > run["max_completion_tokens"])
        cut = finish == "length" or over
        if not calls or active.message is not None:
            if active.message is None:
                self._open_message(active)
            text_tokens = count_tokens("".join(active.text))
            step_usage = (_reasoned(_usage(usage.prompt_tokens, usage.completion_tokens), thought)
                          if not calls else _usage(0, text_tokens))
            reason = "max_tokens" if cut else "content_filter" if finish == "content_filter" else None
            self._close_message(active, step_usage, incomplete=reason, persist=not reason)
            if reason:
                details = {"reason": "max_completion_tokens"} if cut else None
                self._end(active, "incomplete", incomplete_details=details)
                return False
        if calls:
            step = active.tool_step
            assert step is not None
            text_tokens = count_tokens("".join(active.text)) if active.text else 0
            active.tool_usage = _reasoned(
                _usage(usage.prompt_tokens if active.message_step is None else 0,
                       max(0, usage.completion_tokens - text_tokens)), thought)
            if cut:
                self._end(active, "incomplete", incomplete_details={"reason": "max_completion_tokens"})
                return False
            active.text = []
            return True
        self._end(active, "completed")
        return False

    # -- reasoning ----------------------------------------------------------------------------
    # A reasoning summary is a run step of its own type, ``reasoning``, with
    # ``step_details: {"type": "reasoning", "reasoning": {"summary": TEXT}}``; its text streams as
    # ``thread.run.step.delta`` events of that shape. Unchanged Assistants clients pass over a
    # step type they don't know (openai-python builds it leniently and only acts on
    # ``tool_calls`` deltas; the Node SDK likewise), and the history sent back to models skips it.
    # It completes when the model's output begins. Models report the reasoning-token count only
    # at the end of the call, and clients allow no event for a step once it is done (the Node
    # SDK's AssistantStream refuses any), so the count goes where it belongs in the spec's terms:
    # in the usage of the step the reasoning led to (the reply or the tool calls), as
    # ``completion_tokens_details.reasoning_tokens``, part of that step's ``completion_tokens``.

    def _reasoning_delta(self, active: ActiveRun, item: ReasoningDelta) -> None:
        step = active.reasoning_step
        text = item.text
        if step is None:
            step = active.reasoning_step = obj.new_step(
                active.run, {"type": "reasoning", "reasoning": {"summary": ""}})
            active.reasoning_part = item.part
            self._emit(active, "thread.run.step.created", snapshot(step))
            self._emit(active, "thread.run.step.in_progress", snapshot(step))
        elif item.part != active.reasoning_part:
            active.reasoning_part = item.part
            text = "\n\n" + text  # a new summary part is a new paragraph
        step["step_details"]["reasoning"]["summary"] += text
        active.segment.push(Event("thread.run.step.delta", {
            "id": step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "reasoning", "reasoning": {"summary": text}}},
        }))

    def _close_reasoning(self, active: ActiveRun, status: str = "completed",
                         error: dict[str, str] | None = None) -> None:
        step, active.reasoning_step = active.reasoning_step, None
        assert step is not None
        if error is not None:
            step["last_error"] = error
        step["status"] = status
        step[f"{status}_at"] = obj.now()
        self.store.put_step(step)
        self._emit(active, f"thread.run.step.{status}", snapshot(step))

    def _open_message(self, active: ActiveRun) -> None:
        run = active.run
        message = obj.assistant_message(run)
        step = obj.new_step(run, {"type": "message_creation",
                                  "message_creation": {"message_id": message["id"]}})
        active.message, active.message_step, active.text = message, step, []
        self._emit(active, "thread.run.step.created", snapshot(step))
        self._emit(active, "thread.run.step.in_progress", snapshot(step))
        self._emit(active, "thread.message.created", snapshot(message))
        self._emit(active, "thread.message.in_progress", snapshot(message))

    def _text_delta(self, active: ActiveRun, text: str) -> None:
        message = active.message
        assert message is not None
        part: dict[str, Any] = {"value": text}
        if not active.text:
            part["annotations"] = []
        active.text.append(text)
        active.segment.push(Event("thread.message.delta", {
            "id": message["id"], "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": part}]},
        }))

    def _message_content(self, active: ActiveRun) -> list[dict[str, Any]]:
        text = "".join(active.text)
        return [{"type": "text", "text": {"value": text, "annotations": []}}] if text else []

    def live_message(self, active: ActiveRun) -> dict[str, Any]:
        message = snapshot(active.message or {})
        message["content"] = self._message_content(active)
        return message

    def _close_message(
        self,
        active: ActiveRun,
        usage: dict[str, int] | None,
        *,
        incomplete: str | None = None,
        step_status: str = "completed",
        persist: bool = True,
    ) -> None:
        """Finish the reply being streamed: message event, then its step's event (spec order).
        With ``persist=False`` the caller writes them in its own transaction."""
        message, step = active.message, active.message_step
        assert message is not None and step is not None
        now = obj.now()
        message["content"] = self._message_content(active)
        if incomplete:
            message.update(status="incomplete", incomplete_at=now,
                           incomplete_details={"reason": incomplete})
        else:
            message.update(status="completed", completed_at=now)
        step["status"] = step_status
        step[f"{step_status}_at"] = now
        step["usage"] = usage
        if persist:
            self.writes.put(("message", message), ("step", step))
            active.message = active.message_step = None
        self._emit(active, "thread.message.incomplete" if incomplete else "thread.message.completed",
                   snapshot(message))
        self._emit(active, f"thread.run.step.{step_status}", snapshot(step))

    def _tool_delta(
        self, active: ActiveRun, item: ToolCallDelta, calls: list[dict[str, Any]],
        slots: dict[int, int], minted: set[int],
    ) -> None:
        if active.tool_step is None:
            if active.message is not None:  # text came first: that reply is done
                self._close_message(active, _usage(0, count_tokens("".join(active.text))))
            active.tool_step = obj.new_step(active.run, {"type": "tool_calls", "tool_calls": []})
            self._emit(active, "thread.run.step.created", snapshot(active.tool_step))
            self._emit(active, "thread.run.step.in_progress", snapshot(active.tool_step))
        position = slots.get(item.index)
        # A new id at a known index is a new call (servers that send every call at index 0),
        # unless the id we hold was made up here because the model sent none at first.
        if position is not None and item.id and item.id != calls[position]["id"]:
            if position in minted:
                minted.discard(position)
                calls[position]["id"] = item.id
            else:
                position = None
        if position is None:
            position = slots[item.index] = len(calls)
            if not item.id:
                minted.add(position)
            call = {"id": item.id or obj.new_id("call"), "type": "function",
                    "function": {"name": item.name or "", "arguments": item.arguments,
                                 "output": None}}
            calls.append(call)
            active.tool_step["step_details"]["tool_calls"].append(call)
            delta: dict[str, Any] = {"index": position, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": item.arguments, "output": None}}
        else:
            call = calls[position]
            call["function"]["arguments"] += item.arguments
            if item.name and not call["function"]["name"]:
                call["function"]["name"] = item.name
            delta = {"index": position, "type": "function",
                     "function": {"arguments": item.arguments}}
            if item.id:
                delta["id"] = item.id
        active.segment.push(Event("thread.run.step.delta", {
            "id": active.tool_step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [delta]}},
        }))

    def _require_action(self, active: ActiveRun) -> None:
        run, step = active.run, active.tool_step
        assert step is not None
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                 for c in step["step_details"]["tool_calls"]]
        run.update(status="requires_action", expires_at=obj.now() + int(self.expires_after),
                   required_action={"type": "submit_tool_outputs",
                                    "submit_tool_outputs": {"tool_calls": calls}})
        self.writes.put(("step", step), ("run", run))
        self._emit(active, "thread.run.requires_action", snapshot(run))
        self._emit(active, "done", "[DONE]")

    # -- endings ----------------------------------------------------------------------------

    def _end(self, active: ActiveRun, status: str, **fields: Any) -> None:
        """Finish the run: write what is open and the run in one transaction, then emit.

        The thread is released whatever the store does: the write is queued when the lock is held
        (the file catches up, see writes.py), and an unexpected error still frees the thread."""
        run = active.run
        try:
            now = obj.now()
            stamp = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}
            run.update(status=status, required_action=None, **fields)
            if status != "expired":
                run["expires_at"] = None
            if status in stamp:
                run[stamp[status]] = now
            parts: list[tuple[str, dict[str, Any]]] = []
            if active.message is not None:
                parts.append(("message", active.message))
            for step in (active.message_step, active.tool_step):
                if step is not None:
                    parts.append(("step", step))
            self.writes.put(*parts, ("run", run))
            active.message = active.message_step = active.tool_step = None
            self._emit(active, f"thread.run.{status}", snapshot(run))
            self._emit(active, "done", "[DONE]")
        finally:
            self.active.pop(run["id"], None)
            if self.by_thread.get(run["thread_id"]) == run["id"]:
                del self.by_thread[run["thread_id"]]
            if active.outputs is not None and not active.outputs.done():
                active.outputs.cancel()

    def _stop_open_parts(self, active: ActiveRun, reason: str, step_status: str,
                         error: dict[str, str] | None = None) -> None:
        """Close the reply (kept, as ``incomplete``) and the open steps of a run that stops."""
        now = obj.now()
        if active.reasoning_step is not None:
            self._close_reasoning(active, step_status, error)
        if active.message is not None:
            if error is not None and active.message_step is not None:
                active.message_step["last_error"] = error
            self._close_message(active, None, incomplete=reason, step_status=step_status,
                                persist=False)
        step = active.tool_step
        if step is not None and step["status"] == "in_progress":
            step["status"] = step_status
            step[f"{step_status}_at"] = now
            step["usage"] = active.tool_usage
            if error is not None:
                step["last_error"] = error
            self._emit(active, f"thread.run.step.{step_status}", snapshot(step))

    def _cancelled(self, active: ActiveRun) -> None:
        if active.id not in self.active:
            return
        self._stop_open_parts(active, "run_cancelled", "cancelled")
        self._end(active, "cancelled")

    def _fail(self, active: ActiveRun, code: str, message: str) -> None:
        if active.id not in self.active:
            return
        if code not in ("server_error", "rate_limit_exceeded", "invalid_prompt"):
            code = "server_error"
        step_code = code if code == "rate_limit_exceeded" else "server_error"
        self._stop_open_parts(active, "run_failed", "failed",
                              {"code": step_code, "message": message})
        self._end(active, "failed", last_error={"code": code, "message": message})

    def _expire(self, active: ActiveRun) -> None:
        step = active.tool_step
        if step is not None:
            step.update(status="expired", expired_at=obj.now(), usage=active.tool_usage)
            self._emit(active, "thread.run.step.expired", snapshot(step))
        self._end(active, "expired")


