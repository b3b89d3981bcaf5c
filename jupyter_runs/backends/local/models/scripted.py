"""``scripted:PATH.json``: a model that plays a JSON script, for the quickstart, examples and tests.

Script format (DESIGN.md)::

    {"delay": 0.02, "turns": [
      {"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}}]},
      {"text": "North grew fastest: **+12%**."}]}

Turn k answers the model call whose ``request.call_index`` is k (the k-th call of a run). A turn may
also hold ``"error": {"code", "message"}`` (the call fails with that ModelError) or
``"finish_reason": "length"`` (the reply is cut, as a model at its token limit), and
``"reasoning": "..."``, a reasoning summary streamed before the text or calls. The file is read
on every call, so editing it between runs takes effect, and a broken file fails the run with a
message naming the file rather than breaking the engine.

Tokens are counted as whitespace-separated words: deterministic, so tests can set token limits.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from ....errors import ModelError
from .base import (
    Finish,
    ModelEvent,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

_WORD = re.compile(r"\s*\S+\s*|\s+")
_ERROR_CODES = ("server_error", "rate_limit_exceeded", "invalid_prompt")
# With no delay, still give the event loop a turn now and then so cancels and other runs get in.
_YIELD_EVERY = 64


def count_tokens(text: str) -> int:
    """The scripted model's token count of a text: its words."""
    return len(text.split())


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Words in a Chat Completions conversation (content, tool call arguments, tool outputs)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):
            total += sum(count_tokens(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            total += count_tokens(call["function"].get("arguments") or "") + 1
    return total


def split_words(text: str) -> list[str]:
    """Word-sized pieces that join back to exactly ``text`` (whitespace kept)."""
    return _WORD.findall(text)


class ScriptedModel:
    """Plays ``path`` (resolved against the working directory when constructed).

    ``root``: a served engine's scripted directory. ``path`` then resolves against it and must lie
    inside it (symlinks followed): remote clients name the path, and an engine that opened any
    file would tell them which files exist.

    ``requests`` keeps the last ``keep_requests`` requests received, so tests can check what the
    engine sent. Off (0) unless a test turns it on: each request holds the whole conversation, so
    a kept log grew the kernel by a copy of the thread per run (quadratic in the thread's length;
    issue 18 measured 56 MB over 200 runs).
    """

    keep_requests: ClassVar[int] = 0

    def __init__(self, path: str | Path, root: str | Path | None = None) -> None:
        if root is None:
            self.path = Path(path).expanduser().resolve()
        else:
            base = Path(root).resolve()
            self.path = (base / path).resolve()
            if not self.path.is_relative_to(base):
                # The same answer whether or not the file exists: no oracle.
                raise ModelError(f"model script {path} is outside this server's scripted "
                                 f"directory (jupyter-runs serve --scripted-dir)",
                                 code="invalid_prompt")
        self.requests: deque[ModelRequest] = deque(maxlen=self.keep_requests)

    def __repr__(self) -> str:
        return f"ScriptedModel({str(self.path)!r})"

    def _load(self) -> tuple[float, list[dict[str, Any]]]:
        name = str(self.path)
        try:
            raw = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read model script {name}: {exc.strerror or exc}",
                             code="invalid_prompt") from None
        try:
            script = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model script {name} is not valid JSON: {exc}",
                             code="invalid_prompt") from None
        if not isinstance(script, dict) or not isinstance(script.get("turns"), list):
            raise ModelError(f'model script {name} must be an object with a "turns" list',
                             code="invalid_prompt")
        delay = script.get("delay", 0)
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
            raise ModelError(f'model script {name}: "delay" must be a number >= 0, got {delay!r}',
                             code="invalid_prompt")
        for k, turn in enumerate(script["turns"]):
            _check_turn(name, k, turn)
        return float(delay), script["turns"]

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        delay, turns = self._load()
        k = request.call_index
        if k >= len(turns):
            raise ModelError(
                f"model script {self.path} has {len(turns)} turn(s) and the run asked for turn "
                f"{k + 1}; add a turn to the script",
                code="server_error",
            )
        turn = turns[k]
        if "error" in turn:
            err = turn["error"]
            raise ModelError(err.get("message") or "scripted error",
                             code=err.get("code") or "server_error")
        prompt = prompt_tokens(request.messages)
        completion = 0
        budget = request.max_tokens
        finish = turn.get("finish_reason")
        calls = [] if request.tool_choice == "none" else list(turn.get("tool_calls") or ())
        if request.parallel_tool_calls is False:
            calls = calls[:1]
        sent = 0

        async def pause() -> None:
            nonlocal sent
            sent += 1
            if delay:
                await asyncio.sleep(delay)
            elif sent % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

        thought = 0
        for piece in split_words(turn.get("reasoning") or ""):
            # A reasoning summary first, as reasoning models stream one; its words count as
            # reasoning tokens (part of the completion, as the APIs count them).
            thought += 1 if piece.strip() else 0
            yield ReasoningDelta(piece)
            await pause()
        completion += thought
        text = turn.get("text")
        if text is None and not calls and "tool_calls" in turn:
            text = ""  # tool_choice "none" removed the calls: answer with an empty reply
        if text:
            # The hot loop of long replies: no helper calls per piece (each piece is one word).
            for n, piece in enumerate(split_words(text), 1):
                words = 1 if piece.strip() else 0
                if budget is not None and completion + words > budget:
                    finish = "length"
                    break
                completion += words
                yield TextDelta(piece)
                if delay:
                    await asyncio.sleep(delay)
                elif not n % _YIELD_EVERY:
                    await asyncio.sleep(0)
        for index, call in enumerate(calls):
            args = call.get("arguments", {})
            args_text = args if isinstance(args, str) else json.dumps(args)
            call_id = call.get("id") or f"call_{secrets.token_hex(12)}"
            yield ToolCallDelta(index, id=call_id, name=call["name"])
            await pause()
            for piece in _pieces(args_text):
                yield ToolCallDelta(index, arguments=piece)
                await pause()
            completion += count_tokens(args_text) + 1
        yield Usage(prompt, completion, reasoning_tokens=thought)
        yield Finish(finish or ("tool_calls" if calls else "stop"))

    async def aclose(self) -> None:
        return None


def _pieces(text: str, n: int = 3) -> list[str]:
    """``text`` in about ``n`` pieces, as a model streams arguments."""
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


def _check_turn(name: str, k: int, turn: Any) -> None:
    where = f"model script {name}, turn {k + 1}"
    if not isinstance(turn, dict):
        raise ModelError(f"{where}: a turn must be an object, got {type(turn).__name__}",
                         code="invalid_prompt")
    if not ({"text", "tool_calls", "error"} & turn.keys()):
        raise ModelError(f'{where}: needs "text", "tool_calls" or "error"', code="invalid_prompt")
    if "text" in turn and not isinstance(turn["text"], str):
        raise ModelError(f'{where}: "text" must be a string', code="invalid_prompt")
    if "reasoning" in turn and not isinstance(turn["reasoning"], str):
        raise ModelError(f'{where}: "reasoning" must be a string', code="invalid_prompt")
    if "tool_calls" in turn:
        calls = turn["tool_calls"]
        if not isinstance(calls, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"] for c in calls
        ):
            raise ModelError(f'{where}: "tool_calls" must be a list of {{"name", "arguments"}}',
                             code="invalid_prompt")
    if "error" in turn:
        err = turn["error"]
        if not isinstance(err, dict) or err.get("code", "server_error") not in _ERROR_CODES:
            raise ModelError(
                f'{where}: "error" must be {{"code", "message"}} with code one of '
                + ", ".join(_ERROR_CODES),
                code="invalid_prompt",
            )
    if turn.get("finish_reason") not in (None, "stop", "length", "content_filter", "tool_calls"):
        raise ModelError(f'{where}: unknown "finish_reason" {turn["finish_reason"]!r}',
                         code="invalid_prompt")
