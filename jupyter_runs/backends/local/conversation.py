"""Rebuild the Chat Completions conversation of a run from its thread.

The thread stores messages; the model also needs the tool calls earlier runs made and the outputs
they got, which live in run steps. A run's steps are replayed in order where its first reply
appears, so "text, tool call, text" comes back in the order it happened. Tool calls without
outputs (a run cancelled or expired while waiting) are left out: Chat Completions rejects an
assistant ``tool_calls`` message that has no answer.

Truncation works on groups (one message, or one assistant tool-call message with its outputs)
so it never separates a call from its output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Group:
    messages: list[dict[str, Any]]
    is_thread_message: bool  # counts for truncation_strategy.last_messages


def chat_content(message: dict[str, Any]) -> Any:
    """A thread message's content as Chat Completions content (a string unless it has images)."""
    parts = message.get("content") or []
    if all(p.get("type") == "text" for p in parts):
        return "\n".join(p["text"]["value"] for p in parts)
    out: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "text":
            out.append({"type": "text", "text": part["text"]["value"]})
        elif part.get("type") == "image_url":
            out.append({"type": "image_url", "image_url": dict(part["image_url"])})
        # image_file needs a file store the engine does not have: left out.
    return out


def _tool_group(step: dict[str, Any]) -> Group | None:
    calls = [c for c in step["step_details"].get("tool_calls") or () if c.get("type") == "function"]
    if not calls or any(c["function"].get("output") is None for c in calls):
        return None
    messages: list[dict[str, Any]] = [{
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
            for c in calls
        ],
    }]
    messages += [
        {"role": "tool", "tool_call_id": c["id"], "content": c["function"]["output"]} for c in calls
    ]
    return Group(messages, False)


def thread_groups(
    messages: list[dict[str, Any]],
    steps_by_run: dict[str, list[dict[str, Any]]],
    current_run_id: str,
) -> list[Group]:
    """The thread as conversation groups, oldest first."""
    by_id = {m["id"]: m for m in messages}
    groups: list[Group] = []
    replayed: set[str] = set()

    def replay(run_id: str) -> None:
        replayed.add(run_id)
        for step in steps_by_run.get(run_id, ()):
            if step["type"] == "message_creation":
                msg = by_id.get(step["step_details"]["message_creation"]["message_id"])
                if msg is not None:
                    groups.append(Group([{"role": "assistant", "content": chat_content(msg)}], True))
            else:
                group = _tool_group(step)
                if group is not None:
                    groups.append(group)

    for msg in messages:
        run_id = msg.get("run_id")
        if msg["role"] == "assistant" and run_id and steps_by_run.get(run_id):
            if run_id not in replayed:
                replay(run_id)
            continue
        groups.append(Group([{"role": msg["role"], "content": chat_content(msg)}], True))
    if current_run_id not in replayed:
        replay(current_run_id)
    return groups


def truncate(
    system: list[dict[str, Any]],
    groups: list[Group],
    strategy: dict[str, Any],
    budget: int | None,
    count: Callable[[list[dict[str, Any]]], int],
) -> list[dict[str, Any]] | None:
    """Apply the truncation strategy; ``None`` when even the shortest prompt is over ``budget``."""
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        keep = strategy["last_messages"]
        seen = 0
        start = len(groups)
        for i in range(len(groups) - 1, -1, -1):
            if groups[i].is_thread_message:
                seen += 1
                if seen > keep:
                    break
            start = i
        groups = groups[start:]
    flat = system + [m for g in groups for m in g.messages]
    if budget is None or count(flat) <= budget:
        return flat
    if strategy.get("type") != "auto":
        return None
    # auto: drop the oldest groups until the prompt fits, keeping at least the newest one.
    sizes = [count(g.messages) for g in groups]
    total = count(system) + sum(sizes)
    start = 0
    while total > budget and start < len(groups) - 1:
        total -= sizes[start]
        start += 1
    if total > budget:
        return None
    return system + [m for g in groups[start:] for m in g.messages]
