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
        kind = type(value)
        current = target.get(key)
        if current is None or key in _REPLACE_KEYS:
            # only containers are copied: every other JSON value is immutable
            target[key] = _copy(value) if kind is dict or kind is list else value
        elif kind is str and type(current) is str:
            target[key] = None  # drop the dict's reference so `+=` grows the text in place, not O(n^2)
            current += value
            target[key] = current
        elif kind is dict and type(current) is dict:
            merge_delta(current, value)
        elif kind is list and type(current) is list:
            merge_list(current, value)
        elif value is not None:
            target[key] = _copy(value) if kind is dict or kind is list else value
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


# -- fast paths -----------------------------------------------------------------------------------
# Nearly every event of a long stream is one of two deltas: a message's text growing by a word
#   {"content": [{"index": i, "type": "text", "text": {"value": "..."}}]}
# and a tool call's arguments growing
#   {"step_details": {"type": "tool_calls", "tool_calls": [{"index": i, "type": "function",
#                                                            "function": {"arguments": "..."}}]}}
# For those exact shapes, onto a snapshot whose part / call already holds every key the delta
# names (so no key is inserted and key order cannot differ), the functions below do what
# merge_delta would do, without its generic walk (one flat function each: calls cost here).
# Anything else returns False, untouched, and takes the general path; tests/test_events.py checks
# that both give equal snapshots over varied shapes.


def _fold_text_delta(message: dict[str, Any], delta: dict[str, Any]) -> bool:
    if len(delta) != 1:
        return False
    content = delta.get("content")
    if type(content) is not list or len(content) != 1:
        return False
    item = content[0]
    if type(item) is not dict or len(item) != 3:
        return False
    index, kind, text = item.get("index"), item.get("type"), item.get("text")
    if type(index) is not int or type(kind) is not str or type(text) is not dict or len(text) != 1:
        return False
    value, parts = text.get("value"), message.get("content")
    if type(value) is not str or type(parts) is not list or not 0 <= index < len(parts):
        return False
    part = parts[index]
    if type(part) is not dict or part.get("index") != index or "type" not in part:
        return False
    target = part.get("text")
    current = target.get("value") if type(target) is dict else None
    if type(current) is not str:
        return False
    part["index"] = index
    part["type"] = kind
    target["value"] = None  # see merge_delta: lets `+=` grow the text in place
    current += value
    target["value"] = current
    return True


def _fold_arguments_delta(step: dict[str, Any], delta: dict[str, Any]) -> bool:
    if len(delta) != 1:
        return False
    details = delta.get("step_details")
    if type(details) is not dict or len(details) != 2:
        return False
    details_kind, calls = details.get("type"), details.get("tool_calls")
    if type(details_kind) is not str or type(calls) is not list or len(calls) != 1:
        return False
    item = calls[0]
    if type(item) is not dict or len(item) != 3:
        return False
    index, kind, function = item.get("index"), item.get("type"), item.get("function")
    if type(index) is not int or type(kind) is not str or type(function) is not dict or len(function) != 1:
        return False
    value, snapshot = function.get("arguments"), step.get("step_details")
    if type(value) is not str or type(snapshot) is not dict or "type" not in snapshot:
        return False
    parts = snapshot.get("tool_calls")
    if type(parts) is not list or not 0 <= index < len(parts):
        return False
    part = parts[index]
    if type(part) is not dict or part.get("index") != index or "type" not in part:
        return False
    target = part.get("function")
    current = target.get("arguments") if type(target) is dict else None
    if type(current) is not str:
        return False
    snapshot["type"] = details_kind
    part["index"] = index
    part["type"] = kind
    target["arguments"] = None
    current += value
    target["arguments"] = current
    return True


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
    # the two deltas first: they are nearly every event of a long stream
    if event == "thread.message.delta":
        mid = data["id"]
        msg = state.messages.get(mid)
        if msg is None:
            msg = state.messages[mid] = {"id": mid, "object": "thread.message", "content": []}
        delta = data.get("delta") or {}
        if not _fold_text_delta(msg, delta):
            merge_delta(msg, delta)
        return msg
    if event == "thread.run.step.delta":
        sid = data["id"]
        step = state.steps.get(sid)
        if step is None:
            step = state.steps[sid] = {"id": sid, "object": "thread.run.step"}
        delta = data.get("delta") or {}
        if not _fold_arguments_delta(step, delta):
            merge_delta(step, delta)
        return step
    if event not in KNOWN_EVENTS:  # e.g. a newer server's "thread.run.heartbeat": never a snapshot
        return None
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
