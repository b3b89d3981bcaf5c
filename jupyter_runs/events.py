"""The event fold: stream events in, run / message / step snapshots out.

Pure functions, no I/O, so ``RunStream``, the widget, the engine's tests and the benchmarks share
one implementation (the front end mirrors it in ``js/src/fold.js``). Merge rules are the spec's:
strings append, dicts merge, lists of dicts merge by their ``index``; identity keys (``id``,
``type``, ``index``, ...) replace instead of appending, because servers repeat them in deltas.

Snapshots are mutated in place for speed: a 200,000-event stream must not copy a growing reply on
every delta. Values taken from a delta are copied when inserted, so a delta handed to a callback is
never changed later by the fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .wire import KNOWN_EVENTS

#: Keys whose value names something rather than accumulating text.
_REPLACE_KEYS = frozenset(("index", "type", "id", "object", "status", "role"))


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def merge_delta(target: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Merge ``delta`` into ``target`` in place and return ``target``."""
    for key, value in delta.items():
        current = target.get(key)
        if current is None or key in _REPLACE_KEYS:
            target[key] = _copy(value)
        elif type(value) is str and type(current) is str:
            target[key] = None  # drop the dict's reference so `+=` grows the text in place, not O(n^2)
            current += value
            target[key] = current
        elif type(value) is dict and type(current) is dict:
            merge_delta(current, value)
        elif type(value) is list and type(current) is list:
            merge_list(current, value)
        elif value is not None:
            target[key] = _copy(value)
    return target


def merge_list(target: list[Any], delta: list[Any]) -> list[Any]:
    """Merge list items by their ``index`` field; items without one are appended."""
    for item in delta:
        if type(item) is not dict or "index" not in item:
            target.append(_copy(item))
            continue
        index = item["index"]
        # Fast path: items usually sit at their own index.
        if index < len(target) and type(target[index]) is dict and target[index].get("index") == index:
            merge_delta(target[index], item)
            continue
        for existing in target:
            if type(existing) is dict and existing.get("index") == index:
                merge_delta(existing, item)
                break
        else:
            target.append(_copy(item))
    return target


@dataclass
class RunState:
    """What a stream has told us so far: the run, its thread, messages and steps by id (in the
    order they were first seen), the last ``error`` event's data, and whether ``done`` arrived."""

    run: dict[str, Any] | None = None
    thread: dict[str, Any] | None = None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    done: bool = False
    events: int = 0


def fold(state: RunState, event: str, data: Any) -> dict[str, Any] | None:
    """Apply one event to ``state``; return the snapshot it touched (run, message, step, thread),
    or ``None`` for ``done``, ``error`` and unknown events, which never raise."""
    state.events += 1
    if event not in KNOWN_EVENTS:  # e.g. a newer server's "thread.run.heartbeat": never a snapshot
        return None
    if event == "thread.message.delta":
        msg = state.messages.get(data["id"])
        if msg is None:
            msg = state.messages[data["id"]] = {"id": data["id"], "object": "thread.message", "content": []}
        merge_delta(msg, data.get("delta") or {})
        return msg
    if event == "thread.run.step.delta":
        step = state.steps.get(data["id"])
        if step is None:
            step = state.steps[data["id"]] = {"id": data["id"], "object": "thread.run.step"}
        merge_delta(step, data.get("delta") or {})
        return step
    if event.startswith("thread.run.step."):
        state.steps[data["id"]] = data
        return data
    if event.startswith("thread.message."):
        state.messages[data["id"]] = data
        return data
    if event.startswith("thread.run."):
        state.run = data
        return data
    if event == "thread.created":
        state.thread = data
        return data
    if event == "done":
        state.done = True
    elif event == "error":
        state.error = data
    return None


def message_text(message: dict[str, Any]) -> str:
    """The text parts of a message (snapshot or delta content) joined."""
    return "".join(
        (part.get("text") or {}).get("value") or ""
        for part in message.get("content") or ()
        if part.get("type") == "text"
    )


def step_tool_calls(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of a ``tool_calls`` step (empty for message creation)."""
    details = step.get("step_details") or {}
    return details.get("tool_calls") or [] if details.get("type") == "tool_calls" else []
