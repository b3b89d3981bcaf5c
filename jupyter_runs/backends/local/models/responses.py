"""The Responses API adapter (``responses:NAME``): OpenAI, or any Open Responses server.

Reasoning models stream their reasoning summaries and handle tools best through the Responses API,
and Open Responses servers (vLLM, Ollama, llama-stack, LiteLLM, gateways) speak it too. This
adapter turns the engine's Chat Completions-shaped :class:`ModelRequest` into a Responses body and
the semantic stream events back into the same model events the Chat Completions adapter yields,
so the run loop, the server and the widget need no second path.

Stateless on purpose: ``store: false`` and the full conversation as ``input`` on every call, never
``previous_response_id`` (Ollama does not support it, and the thread in our store is the one
source of truth). Requests, retries, deadlines and errors go through the shared ``_http.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ....errors import ModelError
from ._http import (
    ModelHTTP,
    _get,
    _int,
    _key_hint,
    check_base_url,
    check_options,
    provider_endpoint,
)
from .base import (
    Finish,
    ModelEvent,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

#: Summaries are what make a reasoning model's silence visible; ``auto`` is the richest a model
#: offers. Config key ``reasoning`` replaces it (``None`` sends nothing).
DEFAULT_REASONING: dict[str, Any] = {"summary": "auto"}
_MIN_OUTPUT_TOKENS = 16  # OpenAI refuses a smaller max_output_tokens


class ResponsesModel:
    """``POST {base_url}/responses`` with ``stream: true``, read as model events."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "",
        reasoning: dict[str, Any] | None = DEFAULT_REASONING,
        **options: Any,
    ) -> None:
        self.base_url = check_base_url(base_url, "responses")
        self.name = name
        self.provider = "responses"
        self.reasoning = dict(reasoning) if reasoning else None
        self.http = ModelHTTP(self.base_url, api_key, who=f"responses:{name}",
                              key_hint=_key_hint("responses"), **options)

    @classmethod
    def for_provider(
        cls,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str = "",
        reasoning: Any = DEFAULT_REASONING,
        **options: Any,
    ) -> ResponsesModel:
        """OpenAI by default (``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``); any Open Responses
        server with ``base_url``. Same config keys as ``compat:``, plus ``reasoning``."""
        base_url, api_key = provider_endpoint("responses", name, base_url, api_key)
        check_options(options, f"responses:{name}")
        if reasoning is not None and not isinstance(reasoning, dict):
            raise ModelError(f"responses:{name}: the reasoning config must be an object such as "
                             f"{{'summary': 'auto', 'effort': 'low'}}, got {reasoning!r}",
                             code="invalid_prompt")
        return cls(base_url, api_key, name=name, reasoning=reasoning, **options)

    def __repr__(self) -> str:
        key = ", api_key=***" if self.http.has_key else ""
        return f"ResponsesModel(responses:{self.name}, base_url={self.base_url!r}{key})"

    def _headers(self) -> dict[str, str]:
        return self.http.headers()

    # -- request ------------------------------------------------------------------------------
    def payload(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of ``POST /responses`` for ``request``."""
        instructions, items = to_input(request.messages)
        body: dict[str, Any] = {
            "model": request.model or self.name,
            "input": items,
            "stream": True,
            "store": False,
        }
        if instructions:
            body["instructions"] = instructions
        if request.tools:
            body["tools"] = [to_tool(t) for t in request.tools]
            if request.tool_choice is not None:
                body["tool_choice"] = to_tool_choice(request.tool_choice)
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_output_tokens"] = max(_MIN_OUTPUT_TOKENS, request.max_tokens)
        fmt = to_text_format(request.response_format)
        if fmt is not None:
            body["text"] = {"format": fmt}
        if self.reasoning:
            body["reasoning"] = dict(self.reasoning)
        return body

    # -- streaming ----------------------------------------------------------------------------
    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Reasoning, text and tool-call deltas, then ``Usage`` and ``Finish``."""
        payload = self.payload(request)
        try:
            async for event in self.http.stream("/responses", payload,
                                                lambda: ResponseEventParser(self.http.who)):
                yield event
            return
        except ModelError as exc:
            # Models without reasoning refuse the parameter; a 400 comes before any event, so
            # asking again without it replays nothing. Remembered for this adapter.
            if not ("reasoning" in payload and exc.code == "invalid_prompt"
                    and "reasoning" in exc.message):
                raise
        self.reasoning = None
        payload.pop("reasoning")
        async for event in self.http.stream("/responses", payload,
                                            lambda: ResponseEventParser(self.http.who)):
            yield event

    async def aclose(self) -> None:
        await self.http.aclose()


# -- Chat Completions request -> Responses request ---------------------------------------------

def to_input(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """``(instructions, input items)`` for Chat Completions ``messages``: system messages become
    the instructions, tool calls ``function_call`` items, tool results ``function_call_output``."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            instructions.append(_plain(content))
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": _plain(content)})
        elif role == "assistant":
            text = _plain(content)
            if text:
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text,
                                           "annotations": []}]})
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": fn.get("name"), "arguments": fn.get("arguments") or ""})
        else:
            items.append({"type": "message", "role": "user", "content": _user_parts(content)})
    return "\n\n".join(i for i in instructions if i), items


def _plain(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts = []
    for part in content or ():
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            parts.append({"type": "input_image", "image_url": image.get("url"),
                          "detail": image.get("detail") or "auto"})
    return parts


def to_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions function tool as a Responses one (flat, not nested in ``function``).
    ``strict`` goes out explicitly: the Responses API defaults it to true, which refuses the
    ordinary schemas notebook functions produce."""
    fn = tool.get("function") or {}
    out: dict[str, Any] = {"type": "function", "name": fn.get("name"),
                           "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
                           "strict": bool(fn.get("strict"))}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def to_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"type": "function", "name": name}
    return choice


def to_text_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema") or {}
        out = {"type": "json_schema", "name": schema.get("name") or "response",
               "schema": schema.get("schema") or {}}
        if "strict" in schema:
            out["strict"] = schema["strict"]
        return out
    if fmt.get("type") in ("json_object", "text"):
        return {"type": fmt["type"]}
    return None


# -- Responses stream -> model events ------------------------------------------------------------

_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


class ResponseEventParser:
    """Reads Responses streaming events (by their ``type``) into model events.

    Function calls get dense indexes in the order their items are added, so parallel calls whose
    argument deltas interleave (matched by ``item_id``, else ``output_index``) stay apart. Text,
    reasoning and arguments that a server sends only in the ``.done`` / ``output_item.done``
    events, without deltas, are yielded from there. The terminal event decides ``Finish``:
    ``response.completed`` (``tool_calls`` when there were calls), ``response.incomplete``
    (``length`` for ``max_output_tokens``), ``response.failed`` (a :class:`ModelError`).
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self.calls: dict[str, int] = {}  # item id (or "#output_index") -> our call index
        self.args: dict[int, str] = {}  # our call index -> arguments yielded so far
        self.text: dict[str, str] = {}  # message item -> text yielded so far
        self.parts: dict[tuple[str, int], int] = {}  # (reasoning item, summary index) -> part
        self.thought: dict[tuple[str, int], str] = {}
        self.closing: list[ModelEvent] | None = None

    def feed(self, name: str, data: Any) -> list[ModelEvent]:
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or name
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler is not None else []

    def end(self) -> list[ModelEvent]:
        return self.closing or []

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def _item_key(data: dict[str, Any]) -> str:
        item = data.get("item")
        item_id = data.get("item_id") or (item.get("id") if isinstance(item, dict) else None)
        return str(item_id) if item_id else f"#{data.get('output_index', 0)}"

    def _call_index(self, key: str, data: dict[str, Any]) -> int | None:
        if key in self.calls:
            return self.calls[key]
        alt = f"#{data.get('output_index', 0)}"
        return self.calls.get(alt)

    # -- handlers -----------------------------------------------------------------------------
    def _item_added(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data.get("item") or {}
        if item.get("type") != "function_call":
            return []
        key = self._item_key(data)
        index = self.calls[key] = len(self.args)
        self.calls.setdefault(f"#{data.get('output_index', 0)}", index)
        args = item.get("arguments") or ""
        self.args[index] = args
        return [ToolCallDelta(index, id=item.get("call_id") or item.get("id") or None,
                              name=item.get("name") or None, arguments=args)]

    def _args_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        index = self._call_index(self._item_key(data), data)
        piece = data.get("delta")
        if index is None or not isinstance(piece, str) or not piece:
            return []
        self.args[index] += piece
        return [ToolCallDelta(index, arguments=piece)]

    def _args_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        index = self._call_index(self._item_key(data), data)
        return self._finish_args(index, data.get("arguments"))

    def _finish_args(self, index: int | None, full: Any) -> list[ModelEvent]:
        if index is None or not isinstance(full, str):
            return []
        sent = self.args[index]
        if full.startswith(sent) and len(full) > len(sent):
            self.args[index] = full
            return [ToolCallDelta(index, arguments=full[len(sent):])]
        return []

    def _item_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data.get("item") or {}
        kind = item.get("type")
        key = self._item_key(data)
        if kind == "function_call":
            index = self._call_index(key, data)
            if index is None:  # never announced: the whole call arrives here
                return [*self._item_added(data)]
            return self._finish_args(index, item.get("arguments"))
        if kind == "message":
            full = "".join(p.get("text") or p.get("refusal") or "" for p in item.get("content") or ()
                           if isinstance(p, dict))
            return self._more_text(key, full)
        if kind == "reasoning":
            out: list[ModelEvent] = []
            for i, part in enumerate(item.get("summary") or ()):
                if isinstance(part, dict):
                    out += self._more_thought(key, i, part.get("text") or "")
            return out
        return []

    def _text_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        piece = data.get("delta")
        if not isinstance(piece, str) or not piece:
            return []
        key = self._item_key(data)
        self.text[key] = self.text.get(key, "") + piece
        return [TextDelta(piece)]

    def _text_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        full = data.get("text") if data.get("type") != "response.refusal.done" else data.get("refusal")
        return self._more_text(self._item_key(data), full)

    def _more_text(self, key: str, full: Any) -> list[ModelEvent]:
        if not isinstance(full, str):
            return []
        sent = self.text.get(key, "")
        if full.startswith(sent) and len(full) > len(sent):
            self.text[key] = full
            return [TextDelta(full[len(sent):])]
        return []

    def _reasoning_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        piece = data.get("delta")
        if not isinstance(piece, str) or not piece:
            return []
        index = data.get("summary_index", data.get("content_index", 0))
        return self._thought(self._item_key(data), int(index or 0), piece)

    def _reasoning_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        index = data.get("summary_index", data.get("content_index", 0))
        return self._more_thought(self._item_key(data), int(index or 0), data.get("text"))

    def _thought(self, key: str, index: int, piece: str) -> list[ModelEvent]:
        part = self.parts.setdefault((key, index), len(self.parts))
        self.thought[(key, index)] = self.thought.get((key, index), "") + piece
        return [ReasoningDelta(piece, part)]

    def _more_thought(self, key: str, index: int, full: Any) -> list[ModelEvent]:
        if not isinstance(full, str):
            return []
        sent = self.thought.get((key, index), "")
        if full.startswith(sent) and len(full) > len(sent):
            return self._thought(key, index, full[len(sent):])
        return []

    def _usage(self, response: dict[str, Any]) -> list[ModelEvent]:
        usage = response.get("usage")
        if not isinstance(usage, dict):
            return []
        return [Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                      reasoning_tokens=_int(_get(usage, "output_tokens_details", "reasoning_tokens")),
                      cached_tokens=_int(_get(usage, "input_tokens_details", "cached_tokens")))]

    def _completed(self, data: dict[str, Any]) -> list[ModelEvent]:
        response = data.get("response") or {}
        self.closing = [*self._usage(response), Finish("tool_calls" if self.calls else "stop")]
        return []

    def _incomplete(self, data: dict[str, Any]) -> list[ModelEvent]:
        response = data.get("response") or {}
        reason = _get(response, "incomplete_details", "reason")
        self.closing = [*self._usage(response), Finish(_INCOMPLETE.get(reason, "length"))]
        return []

    def _failed(self, data: dict[str, Any]) -> list[ModelEvent]:
        error = (data.get("response") or {}).get("error") or {}
        message = error.get("message") or "no details"
        code = error.get("code")
        raise ModelError(
            f"{self.who} failed: {message}" + (f" ({code})" if code else ""),
            code="rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_error",
        )


_HANDLERS = {
    "response.output_item.added": ResponseEventParser._item_added,
    "response.output_item.done": ResponseEventParser._item_done,
    "response.function_call_arguments.delta": ResponseEventParser._args_delta,
    "response.function_call_arguments.done": ResponseEventParser._args_done,
    "response.output_text.delta": ResponseEventParser._text_delta,
    "response.output_text.done": ResponseEventParser._text_done,
    "response.refusal.delta": ResponseEventParser._text_delta,
    "response.refusal.done": ResponseEventParser._text_done,
    "response.reasoning_summary_text.delta": ResponseEventParser._reasoning_delta,
    "response.reasoning_summary_text.done": ResponseEventParser._reasoning_done,
    # Open models (gpt-oss on vLLM / Ollama) stream their raw reasoning, not a summary.
    "response.reasoning_text.delta": ResponseEventParser._reasoning_delta,
    "response.reasoning_text.done": ResponseEventParser._reasoning_done,
    "response.completed": ResponseEventParser._completed,
    "response.incomplete": ResponseEventParser._incomplete,
    "response.failed": ResponseEventParser._failed,
}

__all__ = ["ResponsesModel", "ResponseEventParser", "to_input", "to_tool"]
