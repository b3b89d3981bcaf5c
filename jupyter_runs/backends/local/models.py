"""Model adapters: what the engine asks of a model, and how model ids pick one.

The engine speaks to every model through :class:`ModelAdapter`: a Chat Completions-shaped request
in, a stream of small typed events out. Ids are ``provider:name`` (DESIGN.md): ``openai:``,
``ollama:``, ``compat:`` (OpenAI-compatible Chat Completions over httpx, in this module) and
``scripted:PATH.json`` (deterministic, offline, in ``scripted.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from ...errors import ModelError, StreamError

log = logging.getLogger("jupyter_runs.models")


@dataclass
class ModelRequest:
    """One model call. ``messages`` and ``tools`` are in Chat Completions form; ``call_index`` is the
    number of model calls this run made before (the scripted model answers turn ``call_index``)."""

    model: str  # the name part of the id (``gpt-4.1-mini``), not the provider
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    response_format: Any = None
    run_id: str = ""
    call_index: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. ``index`` orders parallel calls; ``id`` and ``name`` come
    with the first piece of a call, ``arguments`` accumulates."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event of a call: ``stop``, ``tool_calls``, ``length`` or ``content_filter``."""

    reason: str


ModelEvent = Union[TextDelta, ToolCallDelta, Usage, Finish]  # noqa: UP007 - a runtime alias on 3.10


class ModelAdapter(Protocol):
    """A model the engine can stream from. Raise :class:`ModelError` (with ``code`` one of
    ``server_error``, ``rate_limit_exceeded``, ``invalid_prompt``) on failure; closing the iterator
    early (cancel) must close the underlying connection."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]: ...

    async def aclose(self) -> None: ...


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"openai:gpt-4.1-mini"`` -> ``("openai", "gpt-4.1-mini")``; a bare name means ``openai``."""
    provider, sep, name = model_id.partition(":")
    if not sep:
        return "openai", model_id
    return provider, name


def resolve_model(model_id: str, **config: Any) -> ModelAdapter:
    """The adapter for a ``provider:name`` id. ``config`` may carry ``base_url`` / ``api_key``
    overrides (``compat:`` needs ``base_url``), and ``scripted_dir`` (see ``ScriptedModel``). Unknown providers raise ``ModelError`` with code
    ``invalid_prompt`` naming the accepted ones."""
    provider, name = split_model_id(model_id)
    scripted_dir = config.pop("scripted_dir", None)  # a served engine confines scripted: paths
    if provider == "scripted":
        from .scripted import ScriptedModel

        return ScriptedModel(name, root=scripted_dir)
    if provider in ("openai", "ollama", "compat"):
        return ChatCompletionsModel.for_provider(provider, name=name, **config)
    raise ModelError(
        f"unknown model provider {provider!r} in {model_id!r}; use openai:NAME, ollama:NAME, "
        "compat:NAME (with base_url) or scripted:PATH.json",
        code="invalid_prompt",
    )


# -- OpenAI-compatible Chat Completions ------------------------------------------------------------

OPENAI_BASE_URL = "https://api.openai.com/v1"
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"

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
_RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504))
_OPTIONS = frozenset(("timeout", "max_retries", "retry_backoff"))


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying (before any token was yielded)."""

    def __init__(self, error: ModelError, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


class ChatCompletionsModel:
    """Any OpenAI-compatible Chat Completions endpoint, streamed over httpx.

    One adapter holds one connection pool; ``aclose`` releases it. Failures before the first
    token (429, 5xx, connection errors) are retried with exponential backoff, because nothing has
    reached the run yet; after the first token a failure ends the call, since replaying it would
    duplicate text the user already saw. The API key lives only in the request headers: it is
    never in ``repr``, and any error text is scrubbed of it before it becomes a ``ModelError``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "",
        provider: str = "compat",
        timeout: float = 120.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ModelError(
                f"the {provider} model base_url must be an http:// or https:// URL ending in the API "
                f"root (such as http://127.0.0.1:8000/v1), got {base_url!r}",
                code="invalid_prompt",
            )
        self.base_url = base_url
        self.name = name
        self.provider = provider
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        self.__api_key = api_key or None
        self._client: Any = None  # httpx.AsyncClient, created on the loop that first streams
        self._client_loop: Any = None

    @classmethod
    def for_provider(
        cls,
        provider: str,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str = "",
        **options: Any,
    ) -> ChatCompletionsModel:
        """The adapter for ``openai``, ``ollama`` or ``compat``, filling in what the environment
        configures: ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``, ``OLLAMA_BASE_URL``,
        ``JUPYTER_RUNS_COMPAT_BASE_URL`` / ``JUPYTER_RUNS_COMPAT_API_KEY``. Explicit arguments win.
        ``options``: ``timeout``, ``max_retries``, ``retry_backoff``."""
        env = os.environ
        if provider == "openai":
            base_url = base_url or env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
            api_key = api_key or env.get("OPENAI_API_KEY")
            if not api_key and base_url.rstrip("/") == OPENAI_BASE_URL:
                raise ModelError(
                    f"openai:{name} needs an API key: set OPENAI_API_KEY (or pass api_key in the "
                    "model config)",
                    code="server_error",
                )
        elif provider == "ollama":
            base_url = base_url or env.get("OLLAMA_BASE_URL") or OLLAMA_BASE_URL
        elif provider == "compat":
            base_url = base_url or env.get("JUPYTER_RUNS_COMPAT_BASE_URL")
            api_key = api_key or env.get("JUPYTER_RUNS_COMPAT_API_KEY")
            if not base_url:
                raise ModelError(
                    f"compat:{name} needs the server's base URL: pass base_url (such as "
                    "http://127.0.0.1:8000/v1) in the model config, or set JUPYTER_RUNS_COMPAT_BASE_URL",
                    code="invalid_prompt",
                )
        else:
            raise ModelError(
                f"unknown Chat Completions provider {provider!r}; use openai, ollama or compat",
                code="invalid_prompt",
            )
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ModelError(
                f"unknown model config {', '.join(map(repr, unknown))} for {provider}:{name}; "
                f"accepted: base_url, api_key, {', '.join(sorted(_OPTIONS))}",
                code="invalid_prompt",
            )
        return cls(base_url, api_key, name=name, provider=provider, **options)

    def __repr__(self) -> str:
        # Never the key: say only whether there is one.
        key = ", api_key=***" if self.__api_key else ""
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
        headers = {"accept": "text/event-stream"}
        if self.__api_key:
            headers["authorization"] = f"Bearer {self.__api_key}"
        return headers

    def _http(self) -> Any:
        import httpx  # lazily: scripted runs never need it

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A pool belongs to one event loop; a second loop gets its own.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                follow_redirects=False,
            )
            self._client_loop = loop
        return self._client

    def _scrub(self, text: str) -> str:
        if self.__api_key and self.__api_key in text:
            text = text.replace(self.__api_key, "***")
        return text

    # -- streaming ----------------------------------------------------------------------------
    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Text and tool-call deltas, then ``Usage`` (when the server reports it) and ``Finish``.
        Raises :class:`ModelError`; closing the iterator early closes the connection."""
        attempt = 0
        while True:
            started = False
            try:
                async for event in self._attempt(request):
                    started = True
                    yield event
                return
            except _Retry as retry:
                if started or attempt >= self.max_retries:
                    raise retry.error from None
                wait = retry.wait if retry.wait is not None else self.retry_backoff * 2**attempt
                attempt += 1
                log.warning("%s; retry %d of %d in %.2fs", retry.error.message, attempt,
                            self.max_retries, min(wait, 30.0))
                await asyncio.sleep(min(wait, 30.0))

    async def _attempt(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """One HTTP request. Raises ``_Retry`` for a retryable failure before the first event."""
        import httpx

        from ...sse import aiter_events

        url = f"{self.base_url}/chat/completions"
        started = False
        try:
            async with self._http().stream(
                "POST", url, json=self.payload(request), headers=self._headers()
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._status_error(response)
                parser = _ChunkParser()
                async for sse in aiter_events(response.aiter_bytes(), strict=False):
                    if sse.event == "done":
                        break
                    for event in parser.feed(sse.data):
                        started = True
                        yield event
                end = parser.end()
                if not end:
                    raise ModelError(
                        f"{self._who()}: the stream ended before the model finished its reply",
                        code="server_error",
                    )
                for event in end:
                    yield event
        except (_Retry, ModelError):
            raise
        except StreamError as exc:  # an {"error": ...} chunk mid-stream, or a garbled one
            raise ModelError(
                self._scrub(f"{self._who()} failed mid-stream: {exc.message}"), code="server_error"
            ) from None
        except httpx.HTTPError as exc:
            what = _describe(exc)
            if started:
                raise ModelError(
                    self._scrub(f"{self._who()}: the connection broke mid-reply ({what})"),
                    code="server_error",
                ) from None
            raise _Retry(ModelError(
                self._scrub(f"could not reach {self._who()} at {self.base_url} ({what})"),
                code="server_error",
            )) from None

    def _who(self) -> str:
        return f"{self.provider}:{self.name}" if self.name else self.provider

    def _status_error(self, response: Any) -> Exception:
        status = response.status_code
        detail = self._scrub(_error_message(response))
        where = f"{self._who()} at {self.base_url}"
        if status in (401, 403):
            error = ModelError(
                f"{where} rejected the API key (HTTP {status}): {detail}. Check the key "
                f"({_key_hint(self.provider)}).",
                code="server_error",
            )
            return error
        if status == 429:
            return _Retry(ModelError(f"{where} is rate limiting requests (HTTP 429): {detail}",
                                     code="rate_limit_exceeded"), _retry_after(response))
        if status in _RETRY_STATUSES or status >= 500:
            return _Retry(ModelError(f"{where} failed (HTTP {status}): {detail}",
                                     code="server_error"), _retry_after(response))
        return ModelError(f"{where} refused the request (HTTP {status}): {detail}",
                          code="invalid_prompt")

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


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

    def feed(self, data: Any) -> list[ModelEvent]:
        if not isinstance(data, dict):
            return []
        out: list[ModelEvent] = []
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(int(usage.get("prompt_tokens") or 0),
                               int(usage.get("completion_tokens") or 0))
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is never asked for; ignore extra choices
            delta = choice.get("delta") or {}
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


def _describe(exc: Exception) -> str:
    """A short, readable cause for an httpx error (its class says more than its often-empty text)."""
    text = str(exc).strip()
    kind = type(exc).__name__
    return f"{kind}: {text}" if text else kind


def _error_message(response: Any) -> str:
    """The ``error.message`` of an error response, else a short piece of its body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if body.get("detail"):  # FastAPI-based servers (vLLM)
            return str(body["detail"])[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase or "no details"


def _retry_after(response: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` / ``retry-after``), if it did."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None


def _key_hint(provider: str) -> str:
    return {
        "openai": "OPENAI_API_KEY or api_key in the model config",
        "compat": "JUPYTER_RUNS_COMPAT_API_KEY or api_key in the model config",
    }.get(provider, "api_key in the model config")
