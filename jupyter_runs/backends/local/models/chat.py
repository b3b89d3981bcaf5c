"""The OpenAI-compatible Chat Completions adapter (``openai:``, ``ollama:``, ``compat:``) and its
streamed-chunk parser."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from ._http import (
    ModelHTTP,
    _get,
    _int,
    _key_hint,
    check_base_url,
    check_options,
    provider_endpoint,
)
from .base import Finish, ModelEvent, ModelRequest, ReasoningDelta, TextDelta, ToolCallDelta, Usage

log = logging.getLogger("jupyter_runs.models")

_FINISH = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
}


class ChatCompletionsModel:
    """Any OpenAI-compatible Chat Completions endpoint, streamed over the shared HTTP layer
    (``_http.py``: retries before the first token, deadlines, typed errors, the key kept out of
    every message and ``repr``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "",
        provider: str = "compat",
        **options: Any,
    ) -> None:
        self.base_url = check_base_url(base_url, provider)
        self.name = name
        self.provider = provider
        who = f"{provider}:{name}" if name else provider
        self.http = ModelHTTP(self.base_url, api_key, who=who, key_hint=_key_hint(provider),
                              **options)

    @classmethod
    def for_provider(
        cls,
        provider: str,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str = "",
        **options: Any,
    ) -> ChatCompletionsModel:
        """The adapter for ``openai``, ``ollama`` or ``compat`` (see :func:`provider_endpoint`).
        ``options``: ``timeout``, ``max_retries``, ``retry_backoff``, ``deadline``,
        ``idle_timeout``."""
        base_url, api_key = provider_endpoint(provider, name, base_url, api_key)
        check_options(options, f"{provider}:{name}")
        return cls(base_url, api_key, name=name, provider=provider, **options)

    def __repr__(self) -> str:
        # Never the key: say only whether there is one.
        key = ", api_key=***" if self.http.has_key else ""
        return f"ChatCompletionsModel({self.provider}:{self.name}, base_url={self.base_url!r}{key})"

    # -- request ------------------------------------------------------------------------------
    def payload(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions`` for ``request``.

        The token limit goes out as ``max_completion_tokens`` (OpenAI's current name; its
        reasoning models reject ``max_tokens``) and, for ``ollama`` and ``compat`` servers, also as
        ``max_tokens``, the only name older OpenAI-compatible servers (llama.cpp, Ollama, LM
        Studio) understand; servers ignore the one they don't know.
        """
        body: dict[str, Any] = {
            "model": request.model or self.name,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = request.tools
            # OpenAI rejects these two without tools, so they only go out with tools.
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
            if self.provider != "openai":
                body["max_tokens"] = request.max_tokens
        if isinstance(request.response_format, dict):  # "auto" means the server's default
            body["response_format"] = request.response_format
        return body

    def _headers(self) -> dict[str, str]:
        return self.http.headers()

    # -- streaming ----------------------------------------------------------------------------
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Text, reasoning and tool-call deltas, then ``Usage`` (when the server reports it) and
        ``Finish``. Raises :class:`ModelError`; closing the iterator early closes the connection."""
        return self.http.stream("/chat/completions", self.payload(request), _ChunkParser)

    async def aclose(self) -> None:
        await self.http.aclose()


class _ChunkParser:
    """Turns ``chat.completion.chunk`` objects into model events.

    Tool calls are renumbered into our own dense indexes: a new ``id`` at an index already in use
    starts a new call (servers that send every call at ``index: 0``), a missing ``index`` continues
    the last call (or starts one when it carries a new id), and a call without any id gets one.
    ``id`` and ``name`` go out once per call even if the server repeats them. ``Usage`` (which
    ``include_usage`` sends after the finish chunk) and ``Finish`` are held to the end, so
    ``Finish`` is always the last event.
    """

    def __init__(self) -> None:
        self.by_server_index: dict[int, int] = {}
        self.ids: dict[int, str] = {}  # our index -> call id
        self.named: set[int] = set()
        self.last: int | None = None
        self.reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, name: str, data: Any) -> list[ModelEvent]:
        if not isinstance(data, dict):
            return []
        out: list[ModelEvent] = []
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
                reasoning_tokens=_int(_get(usage, "completion_tokens_details", "reasoning_tokens")),
                cached_tokens=_int(_get(usage, "prompt_tokens_details", "cached_tokens")),
            )
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is never asked for; ignore extra choices
            delta = choice.get("delta") or {}
            # vLLM, DeepSeek and llama.cpp stream reasoning as ``reasoning_content``; Ollama
            # and OpenRouter as ``reasoning``.
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                out.append(ReasoningDelta(thought))
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(TextDelta(text))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.append(self._tool_call(call))
            reason = choice.get("finish_reason")
            if reason:
                self.reason = _FINISH.get(reason, "stop")
        return out

    def _tool_call(self, call: dict[str, Any]) -> ToolCallDelta:
        server_index = call.get("index")
        call_id = call.get("id") or None
        if server_index is None:
            ours = self.last
            if ours is None or (call_id and call_id != self.ids.get(ours)):
                ours = self._new(None)
        else:
            ours = self.by_server_index.get(server_index)
            if ours is None or (call_id and self.ids.get(ours) not in (None, call_id)):
                ours = self._new(server_index)
        self.last = ours
        fn = call.get("function") or {}
        first_id = None
        if ours not in self.ids:
            self.ids[ours] = call_id or f"call_{secrets.token_hex(12)}"
            first_id = self.ids[ours]
        name = fn.get("name") or None
        if name and ours not in self.named:
            self.named.add(ours)
        else:
            name = None
        args = fn.get("arguments")
        if args is None:
            args = ""
        elif not isinstance(args, str):  # a few servers send the arguments as an object
            args = json.dumps(args)
        return ToolCallDelta(ours, id=first_id, name=name, arguments=args)

    def _new(self, server_index: int | None) -> int:
        ours = max([*self.ids, *self.by_server_index.values(), -1]) + 1
        if server_index is not None:
            self.by_server_index[server_index] = ours
        return ours

    def end(self) -> list[ModelEvent]:
        """``Usage`` (when the server sent it) and ``Finish``; ``None`` if no finish_reason came.
        A server that reports ``stop`` after streaming tool calls (some do) finishes ``tool_calls``,
        since the calls are what the run must act on."""
        if self.reason is None:
            return []
        reason = "tool_calls" if self.ids and self.reason == "stop" else self.reason
        return [*([self.usage] if self.usage else []), Finish(reason)]
