"""The HTTP layer every hosted model adapter shares: one streamed POST, retried, with deadlines.

Chat Completions and Responses differ only in the body they send and how they read the stream's
events; how a call is made, retried, timed out and turned into a :class:`ModelError` is the same,
so it lives here once:

* **Retries** on 408/409/429/5xx and connection failures, with exponential backoff that honours
  ``retry-after-ms`` / ``retry-after``, but only before the first model event: after that a retry
  would replay text the user already saw.
* **Deadlines.** httpx's timeout is per read, so a server that trickles keep-alives (``: ping``)
  never trips it. ``idle_timeout`` bounds the time between *model events* (content: text, tool
  call pieces, reasoning; comments and empty chunks do not count) and ``deadline`` bounds the whole
  call, retries included. Either ends the call with ``server_error`` naming which one.
* **Error bodies.** A status error carries the server's ``error.message``; a 200 answer that is
  JSON instead of an event stream (some servers report errors that way) carries it too.
* **The key** lives only in the request headers; every message is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ....errors import ModelError, StreamError

log = logging.getLogger("jupyter_runs.models")

RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504))
#: Model config keys every HTTP adapter accepts besides ``base_url`` and ``api_key``.
OPTIONS = frozenset(("timeout", "max_retries", "retry_backoff", "deadline", "idle_timeout"))
DEFAULT_DEADLINE = 1800.0  # a hard reasoning call can think for many minutes
DEFAULT_IDLE_TIMEOUT = 300.0  # Chat Completions reasoning models are silent while they think
_MAX_WAIT = 30.0


class StreamParser(Protocol):
    """Reads one call's server-sent events. ``feed`` returns the model events of one SSE event;
    ``end`` the closing ones (``Usage``, ``Finish``), empty if the stream ended unfinished."""

    def feed(self, name: str, data: Any) -> list[Any]: ...

    def end(self) -> list[Any]: ...


class _Retry(Exception):
    """This attempt failed in a way worth retrying (before any model event was yielded)."""

    def __init__(self, error: ModelError, wait: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


def check_base_url(base_url: str | None, provider: str) -> str:
    base_url = (base_url or "").strip().rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ModelError(
            f"the {provider} model base_url must be an http:// or https:// URL ending in the API "
            f"root (such as http://127.0.0.1:8000/v1), got {base_url!r}",
            code="invalid_prompt",
        )
    return base_url


def check_options(options: dict[str, Any], who: str) -> None:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ModelError(
            f"unknown model config {', '.join(map(repr, unknown))} for {who}; "
            f"accepted: base_url, api_key, {', '.join(sorted(OPTIONS))}",
            code="invalid_prompt",
        )


def _seconds(value: Any, default: float | None) -> float | None:
    """A positive number of seconds, or ``None`` (no limit) for ``0`` / ``None``."""
    if value is None:
        return default
    value = float(value)
    return value if value > 0 else None


class ModelHTTP:
    """One model endpoint: its URL, key, connection pool, retry policy and deadlines."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        who: str,
        key_hint: str,
        timeout: float = 120.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        deadline: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.who = who
        self.key_hint = key_hint
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = float(retry_backoff)
        self.deadline = _seconds(deadline, DEFAULT_DEADLINE)
        self.idle_timeout = _seconds(idle_timeout, DEFAULT_IDLE_TIMEOUT)
        self.__api_key = api_key or None
        self._client: Any = None  # httpx.AsyncClient, created on the loop that first streams
        self._client_loop: Any = None

    @property
    def has_key(self) -> bool:
        return self.__api_key is not None

    def headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self.__api_key:
            headers["authorization"] = f"Bearer {self.__api_key}"
        return headers

    def scrub(self, text: str) -> str:
        if self.__api_key and self.__api_key in text:
            text = text.replace(self.__api_key, "***")
        return text

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

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- streaming ----------------------------------------------------------------------------
    async def stream(
        self, path: str, payload: dict[str, Any], parser: Callable[[], StreamParser]
    ) -> AsyncIterator[Any]:
        """POST ``payload`` to ``path`` and yield the model events ``parser`` reads, under the
        retry policy and both deadlines. Raises :class:`ModelError`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        attempt = 0
        while True:
            started = False
            events = self._attempt(path, payload, parser())
            try:
                while True:
                    limit, which = self._limit(loop.time(), start)
                    try:
                        event = await _next_within(events, limit)
                    except StopAsyncIteration:
                        return
                    except asyncio.TimeoutError:
                        raise ModelError(self._timed_out(which), code="server_error") from None
                    started = True
                    yield event
            except _Retry as retry:
                if started or attempt >= self.max_retries:
                    raise retry.error from None
                wait = retry.wait if retry.wait is not None else self.retry_backoff * 2**attempt
                wait = min(wait, _MAX_WAIT)
                if self.deadline is not None and loop.time() + wait - start >= self.deadline:
                    raise retry.error from None  # waiting would pass the deadline anyway
                attempt += 1
                log.warning("%s; retry %d of %d in %.2fs", retry.error.message, attempt,
                            self.max_retries, wait)
                await asyncio.sleep(wait)
            finally:
                await events.aclose()

    def _limit(self, now: float, start: float) -> tuple[float | None, str]:
        """Seconds until the nearer deadline (re-armed after every event), and which it is."""
        left = None if self.deadline is None else max(0.0, start + self.deadline - now)
        if self.idle_timeout is not None and (left is None or self.idle_timeout < left):
            return self.idle_timeout, "idle"
        return left, "deadline"

    def _timed_out(self, which: str) -> str:
        if which == "idle":
            return (f"{self.who} sent no content for {self.idle_timeout:g} s (idle_timeout); "
                    "the call was stopped")
        return f"{self.who} did not finish within {self.deadline:g} s (deadline); the call was stopped"

    async def _attempt(self, path: str, payload: dict[str, Any],
                       parser: StreamParser) -> AsyncIterator[Any]:
        """One HTTP request. Raises ``_Retry`` for a retryable failure before the first event."""
        import httpx

        from ....sse import aiter_events

        url = f"{self.base_url}{path}"
        started = False
        try:
            async with self._http().stream("POST", url, json=payload,
                                           headers=self.headers()) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._status_error(response)
                kind = response.headers.get("content-type", "")
                if "json" in kind and "event-stream" not in kind:
                    await response.aread()
                    raise self._json_answer(response)
                async for sse in aiter_events(response.aiter_bytes(), strict=False):
                    if sse.event == "done":
                        break
                    for event in parser.feed(sse.event, sse.data):
                        started = True
                        yield event
                end = parser.end()
                if not end:
                    raise ModelError(
                        f"{self.who}: the stream ended before the model finished its reply",
                        code="server_error",
                    )
                for event in end:
                    yield event
        except (_Retry, ModelError):
            raise
        except StreamError as exc:  # an error event mid-stream, or a garbled one
            code = "rate_limit_exceeded" if exc.code == "rate_limit_exceeded" else "server_error"
            raise ModelError(
                self.scrub(f"{self.who} failed mid-stream: {exc.message}"), code=code
            ) from None
        except httpx.HTTPError as exc:
            what = _describe(exc)
            if started:
                raise ModelError(
                    self.scrub(f"{self.who}: the connection broke mid-reply ({what})"),
                    code="server_error",
                ) from None
            raise _Retry(ModelError(
                self.scrub(f"could not reach {self.who} at {self.base_url} ({what})"),
                code="server_error",
            )) from None

    def _json_answer(self, response: Any) -> Exception:
        """A 200 with a JSON body where an event stream was asked for: some servers report errors
        so; the server's own ``error.message`` (else a piece of the body) is what the user needs."""
        detail = self.scrub(error_message(response))
        return ModelError(f"{self.who} at {self.base_url} answered JSON instead of an event "
                          f"stream: {detail}", code="server_error")

    def _status_error(self, response: Any) -> Exception:
        status = response.status_code
        detail = self.scrub(error_message(response))
        where = f"{self.who} at {self.base_url}"
        if status in (401, 403):
            return ModelError(
                f"{where} rejected the API key (HTTP {status}): {detail}. Check the key "
                f"({self.key_hint}).",
                code="server_error",
            )
        if status == 429:
            return _Retry(ModelError(f"{where} is rate limiting requests (HTTP 429): {detail}",
                                     code="rate_limit_exceeded"), retry_after(response))
        if status in RETRY_STATUSES or status >= 500:
            return _Retry(ModelError(f"{where} failed (HTTP {status}): {detail}",
                                     code="server_error"), retry_after(response))
        return ModelError(f"{where} refused the request (HTTP {status}): {detail}",
                          code="invalid_prompt")


def _describe(exc: Exception) -> str:
    """A short, readable cause for an httpx error (its class says more than its often-empty text)."""
    text = str(exc).strip()
    kind = type(exc).__name__
    return f"{kind}: {text}" if text else kind


def error_message(response: Any) -> str:
    """The ``error.message`` of an error response, else a short piece of its body."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:1000]
        if isinstance(err, str):
            return err[:1000]
        if body.get("detail"):  # FastAPI-based servers (vLLM)
            return str(body["detail"])[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase or "no details"


def retry_after(response: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` / ``retry-after``), if it did."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None


async def _next_within(events: AsyncIterator[Any], limit: float | None) -> Any:
    """The next item, or ``asyncio.TimeoutError`` after ``limit`` seconds.

    Not ``asyncio.wait_for``: that runs ``__anext__`` in a task of its own, and the httpx stream
    opened inside the generator must be entered and left by one task. This cancels the current
    task instead, as ``asyncio.timeout`` (3.11+) does.
    """
    if limit is None:
        return await events.__anext__()
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(limit, fire)
    try:
        return await events.__anext__()
    except asyncio.CancelledError:
        if not fired:
            raise
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        raise asyncio.TimeoutError from None
    finally:
        handle.cancel()


# -- shared by the HTTP adapters (endpoints from the environment, JSON lookups) ----------------

OPENAI_BASE_URL = "https://api.openai.com/v1"
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"


def provider_endpoint(provider: str, name: str, base_url: str | None,
                      api_key: str | None) -> tuple[str, str | None]:
    """``(base_url, api_key)`` for ``openai``, ``ollama`` or ``compat``, filling in what the
    environment configures: ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``, ``OLLAMA_BASE_URL``,
    ``JUPYTER_RUNS_COMPAT_BASE_URL`` / ``JUPYTER_RUNS_COMPAT_API_KEY``. Explicit arguments win.
    Shared by every HTTP adapter, so ``responses:`` takes the same keys as ``openai:``."""
    env = os.environ
    if provider in ("openai", "responses"):
        base_url = base_url or env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        api_key = api_key or env.get("OPENAI_API_KEY")
        if not api_key and base_url.rstrip("/") == OPENAI_BASE_URL:
            raise ModelError(
                f"{provider}:{name} needs an API key: set OPENAI_API_KEY (or pass api_key in the "
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
    return base_url, api_key


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _key_hint(provider: str) -> str:
    return {
        "openai": "OPENAI_API_KEY or api_key in the model config",
        "responses": "OPENAI_API_KEY or api_key in the model config",
        "compat": "JUPYTER_RUNS_COMPAT_API_KEY or api_key in the model config",
    }.get(provider, "api_key in the model config")
