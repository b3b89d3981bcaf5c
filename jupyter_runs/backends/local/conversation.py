"""Rebuild the Chat Completions conversation of a run from its thread.

The thread stores messages; the model also needs the tool calls earlier runs made and the outputs
they got, which live in run steps. A run's steps are replayed in order where its first reply
appears, so "text, tool call, text" comes back in the order it happened. Tool calls without
outputs (a run cancelled or expired while waiting) are left out: Chat Completions rejects an
assistant ``tool_calls`` message that has no answer.

Truncation works on groups (one message, or one assistant tool-call message with its outputs)
so it never separates a call from its output.

Every request has a budget: the run's ``max_prompt_tokens`` (a hard limit: over it the run ends
``incomplete``), else a per-model default (a soft target standing in for the model's context
window and the user's bill). Within it, context attachments and tool outputs are clipped to their
own share first, so one huge output cannot push the whole conversation out; then the oldest
groups go, keeping the instructions and the current turn (the newest user message and what
followed it). Messages are read newest first, only as far as the budget reaches, so a run on a
5,000-message thread decodes a few hundred rows, not 5,000.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...context import clip_block, is_block
from ...tools.encode import cap

#: Default request budgets in estimated tokens, by model provider ("*": any other). Small local
#: models (Ollama) often run with an 8k window; hosted ones take more, but every token is paid for.
DEFAULT_BUDGETS: dict[str, int] = {"scripted": 8192, "ollama": 8192, "*": 32768}
#: Shares of the budget: all attachments of one message together, and each tool output.
CONTEXT_SHARE = 0.5
TOOL_SHARE = 0.25
BYTES_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4  # role and separators, as Chat Completions counts them


def estimate_text(text: str) -> int:
    """Tokens of ``text`` without a tokenizer: about 4 UTF-8 bytes a token for English and code
    (tokenizers of the common models average 3.5-4.5 on prose; CJK costs more bytes per token)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return -(-size // BYTES_PER_TOKEN)


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """Estimated prompt tokens of a Chat Completions conversation."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text(content)
        elif isinstance(content, list):
            total += sum(estimate_text(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            total += estimate_text(call["function"].get("arguments") or "")
            total += estimate_text(call["function"].get("name") or "") + 1
    return total


def default_budget(model_id: str, budgets: int | Mapping[str, int] | None = None) -> int:
    """The per-model default budget: ``budgets`` is one number for every model, or a mapping by
    model id or provider (``{"ollama": 4096, "openai:gpt-4.1": 100000, "*": 32768}``)."""
    if isinstance(budgets, int) and budgets > 0:
        return budgets
    table = {**DEFAULT_BUDGETS, **dict(budgets or {})}
    provider = model_id.partition(":")[0]
    return int(table.get(model_id) or table.get(provider) or table["*"])


@dataclass(frozen=True)
class Shares:
    """Byte caps derived from a budget."""

    context: int | None = None  # all context blocks of one message together
    tool: int | None = None  # each tool output

    @classmethod
    def of(cls, budget: int | None) -> Shares:
        if budget is None:
            return cls()
        size = budget * BYTES_PER_TOKEN
        return cls(max(512, int(size * CONTEXT_SHARE)), max(256, int(size * TOOL_SHARE)))


@dataclass
class Group:
    messages: list[dict[str, Any]]
    is_thread_message: bool  # counts for truncation_strategy.last_messages
    run_id: str | None = None  # the run whose steps produced it (replayed groups)
    tokens: int | None = None  # its estimate, computed once: budgets ask for it repeatedly

    def size(self, count: Callable[[list[dict[str, Any]]], int]) -> int:
        if self.tokens is None:
            self.tokens = count(self.messages)
        return self.tokens


def chat_content(message: dict[str, Any], context_limit: int | None = None) -> Any:
    """A thread message's content as Chat Completions content (a string unless it has images);
    context blocks share ``context_limit`` bytes between them."""
    parts = message.get("content") or []
    texts = [p["text"]["value"] for p in parts if p.get("type") == "text"]
    if context_limit is not None:
        blocks = sum(1 for t in texts if is_block(t))
        if blocks:
            each = context_limit // blocks
            texts = [clip_block(t, each) if is_block(t) else t for t in texts]
    if all(p.get("type") == "text" for p in parts):
        return "\n".join(texts)
    out: list[dict[str, Any]] = []
    text_parts = iter(texts)
    for part in parts:
        if part.get("type") == "text":
            out.append({"type": "text", "text": next(text_parts)})
        elif part.get("type") == "image_url":
            out.append({"type": "image_url", "image_url": dict(part["image_url"])})
        # image_file needs a file store the engine does not have: left out.
    return out


def _tool_group(step: dict[str, Any], tool_limit: int | None = None) -> Group | None:
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
        {"role": "tool", "tool_call_id": c["id"], "content": cap(c["function"]["output"], tool_limit)}
        for c in calls
    ]
    return Group(messages, False, step.get("run_id"))


def thread_groups(
    messages: list[dict[str, Any]],
    steps_by_run: dict[str, list[dict[str, Any]]],
    current_run_id: str,
    shares: Shares | None = None,
) -> list[Group]:
    """The thread as conversation groups, oldest first."""
    shares = shares or Shares()
    by_id = {m["id"]: m for m in messages}
    groups: list[Group] = []
    replayed: set[str] = set()

    def replay(run_id: str) -> None:
        replayed.add(run_id)
        for step in steps_by_run.get(run_id, ()):
            if step["type"] == "message_creation":
                msg = by_id.get(step["step_details"]["message_creation"]["message_id"])
                if msg is not None:
                    content = chat_content(msg, shares.context)
                    groups.append(Group([{"role": "assistant", "content": content}], True, run_id))
            else:
                group = _tool_group(step, shares.tool)
                if group is not None:
                    groups.append(group)

    for msg in messages:
        run_id = msg.get("run_id")
        if msg["role"] == "assistant" and run_id and steps_by_run.get(run_id):
            if run_id not in replayed:
                replay(run_id)
            continue
        groups.append(Group([{"role": msg["role"], "content": chat_content(msg, shares.context)}], True))
    if current_run_id not in replayed:
        replay(current_run_id)
    return groups


def _current_turn(groups: list[Group]) -> int:
    """Index of the newest user message: it and everything after it are the turn being answered."""
    for i in range(len(groups) - 1, -1, -1):
        first = groups[i].messages[0]
        if groups[i].is_thread_message and first.get("role") == "user":
            return i
    return max(0, len(groups) - 1)


def _last_messages(groups: list[Group], strategy: Mapping[str, Any]) -> list[Group]:
    if strategy.get("type") != "last_messages" or not strategy.get("last_messages"):
        return groups
    keep = strategy["last_messages"]
    seen = 0
    start = len(groups)
    for i in range(len(groups) - 1, -1, -1):
        if groups[i].is_thread_message:
            seen += 1
            if seen > keep:
                break
        start = i
    return groups[start:]


def truncate(
    system: list[dict[str, Any]],
    groups: list[Group],
    strategy: dict[str, Any],
    budget: int | None,
    count: Callable[[list[dict[str, Any]]], int],
    *,
    hard: bool = True,
) -> list[dict[str, Any]] | None:
    """Apply the truncation strategy within ``budget``; ``None`` when even the shortest prompt
    (instructions and the current turn) is over a ``hard`` budget. Over a soft budget the
    shortest prompt is sent anyway: the model, not a guess, says whether it fits."""
    groups = _last_messages(groups, strategy)
    sizes = [g.size(count) for g in groups]
    total = count(system) + sum(sizes)
    if budget is None or total <= budget:
        return system + [m for g in groups for m in g.messages]
    if hard and strategy.get("type") != "auto":
        return None
    # Drop the oldest groups until the prompt fits, never the current turn.
    keep_from = _current_turn(groups)
    start = 0
    while start < keep_from and (total > budget or groups[start].messages[0]["role"] != "user"):
        # Past the budget, and then on to a user message: many chat templates (llama.cpp,
        # Mistral) reject a conversation that opens with the assistant or a tool call.
        total -= sizes[start]
        start += 1
    if total > budget and hard:
        return None
    return system + [m for g in groups[start:] for m in g.messages]


def recent_groups(
    page: Callable[[int, int], list[dict[str, Any]]],
    steps: Callable[[set[str]], dict[str, list[dict[str, Any]]]],
    current_run_id: str,
    enough: Callable[[list[Group]], bool],
    shares: Shares | None = None,
    first: int = 64,
) -> list[Group]:
    """The newest groups of a thread, reading messages newest first only until ``enough`` says
    the groups fill the request. ``page(limit, offset)`` returns messages newest first.

    A read that stops inside the thread may stop inside a run (its older messages unread); that
    run's groups are dropped rather than sent with a hole in the middle.
    """
    loaded: list[dict[str, Any]] = []
    by_run: dict[str, list[dict[str, Any]]] = {}
    limit = first
    while True:
        batch = page(limit, len(loaded))
        loaded += batch
        complete = len(batch) < limit
        messages = loaded[::-1]
        wanted = {m["run_id"] for m in batch if m.get("run_id")} | {current_run_id}
        if wanted - by_run.keys():
            by_run.update(steps(wanted - by_run.keys()))
        groups = thread_groups(messages, by_run, current_run_id, shares)
        if complete:
            return groups
        boundary = messages[0].get("run_id")
        if boundary and boundary != current_run_id:
            last = max((i for i, g in enumerate(groups) if g.run_id == boundary), default=-1)
            groups = groups[last + 1:]
        if enough(groups):
            return groups
        limit = len(loaded)  # double what was read: O(budget) reads in all


