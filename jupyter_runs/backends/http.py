"""Any Assistants-compatible server over httpx: routes, retries, SSE, typed errors.

Why it is shaped this way:

* **One ``httpx.AsyncClient`` per event loop.** A connection pool belongs to the loop that opened
  its sockets; the sync ``Client`` drives this backend from the portal's background loop while a
  notebook awaits it on the kernel's loop. Clients are kept in a ``WeakKeyDictionary`` keyed by the
  loop, so a loop that goes away takes its client with it.
* **Retries** (connection errors, timeouts, 408, 409, 429, 5xx; ``max_retries`` more attempts) wait
  what the server asks (``retry-after-ms``, then ``Retry-After`` in seconds or as an HTTP date, up
  to 60 s) or else an exponential backoff with jitter, so many clients don't retry in lockstep. A
  streamed request is retried only until the first byte of its body has arrived: after that, events
  have been handed on and a retry would replay (or duplicate) them.
* **The API key is a secret**: it lives in a wrapper whose repr is masked, goes only into the
  ``Authorization`` header (which httpx masks in reprs), is never logged, and is scrubbed from any
  error message or body a server sends back, in case the server echoes it.
* Errors are the types of :mod:`jupyter_runs.errors`: the API's error body becomes an
  ``APIError`` subclass by status (with ``code``, ``type``, ``param`` and ``x-request-id``);
  transport problems are ``APIConnectionError``, and timeouts ``APITimeoutError``; a stream that
  ends before ``done`` is an ``APIConnectionError`` saying so.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .. import __version__, _portal
from ..errors import APIConnectionError, APIError, APITimeoutError, StreamError, error_for_status
from ..sse import SSEDecoder
from ..wire import Event
from . import OPERATIONS, Operation

log = logging.getLogger("jupyter_runs.http")

_RETRY_STATUSES = frozenset((408, 409, 429))
_MAX_SERVER_DELAY = 60.0  # a Retry-After beyond this is ignored in favour of our own backoff


class JSONResponse(dict):
    """A response's JSON object that also carries the response ``headers`` (case-insensitive),
    so callers can read e.g. ``openai-poll-after-ms`` without a second return value."""

    __slots__ = ("headers",)

    def __init__(self, data: Mapping[str, Any] = (), headers: httpx.Headers | None = None) -> None:
        super().__init__(data)
        self.headers = headers if headers is not None else httpx.Headers()


class _Secret:
    """Holds the API key so that no repr, log or traceback of its holder shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def retry_delay(headers: httpx.Headers | None, retry: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): the server's ``retry-after-ms`` /
    ``Retry-After`` when given and sane, else ``base * 2**retry`` capped, minus up to 25% jitter."""
    if headers is not None:
        server = _server_delay(headers)
        if server is not None:
            return server
    delay = min(base * 2**retry, cap)
    return delay * (1 - 0.25 * random.random())


def _server_delay(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            delay = float(value) / 1000
        except ValueError:
            delay = None
        if delay is not None and 0 <= delay <= _MAX_SERVER_DELAY:
            return delay
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        delay = when.timestamp() - time.time()
        delay = max(delay, 0.0)
    return delay if 0 <= delay <= _MAX_SERVER_DELAY else None


class HTTPBackend:
    """The :class:`~jupyter_runs.backends.Backend` protocol over HTTP.

    ``base_url`` is the API root including ``/v1``. ``timeout`` (seconds or an ``httpx.Timeout``)
    bounds connecting and every read, so a stream silent for longer is an ``APITimeoutError``.
    ``http_client_factory()`` makes the ``httpx.AsyncClient`` for each event loop (to set proxies,
    TLS or a transport); it is called on the loop that will use the client.
    """

    #: Backoff without a server hint: ``retry_base_delay * 2**retry``, at most ``retry_max_delay``.
    retry_base_delay = 0.5
    retry_max_delay = 8.0
    #: Seconds between polls when the server gives no ``openai-poll-after-ms`` (read by ``Run.wait``).
    poll_interval = 1.0

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        http_client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = str(base_url).rstrip("/")
        self._api_key = _Secret(api_key) if api_key else None
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})
        self._factory = http_client_factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"HTTPBackend(base_url={self.base_url!r}, api_key={key}, max_retries={self.max_retries})"

    # -- clients ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None or client.is_closed:
                client = self._factory() if self._factory else httpx.AsyncClient(timeout=self.timeout)
                self._clients[loop] = client
            return client

    async def aclose(self) -> None:
        """Close every loop's client: this loop's directly, others' on their own loop."""
        current = asyncio.get_running_loop()
        with self._lock:
            clients = list(self._clients.items())
            self._clients.clear()
        for loop, client in clients:
            if loop is current:
                await client.aclose()
            elif loop.is_running() and not loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(future), 5)
                except Exception:  # that loop is stuck or gone; its sockets die with it
                    log.debug("could not close the HTTP client of another event loop")

    # -- requests ---------------------------------------------------------------------------

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {
            "Accept": "text/event-stream" if stream else "application/json",
            "OpenAI-Beta": "assistants=v2",
            "User-Agent": f"jupyter-runs/{__version__}",
        }
        headers.update(self.default_headers)
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.value}"
        return headers

    def _request(
        self,
        op: str,
        params: Mapping[str, str] | None,
        body: dict[str, Any] | None,
        query: Mapping[str, Any] | None,
        *,
        stream: bool,
    ) -> tuple[Operation, httpx.Request]:
        operation = OPERATIONS.get(op)
        if operation is None:
            raise ValueError(f"unknown Assistants operation {op!r}")
        if stream and not operation.streams:
            raise ValueError(f"operation {op!r} does not stream")
        try:
            path = operation.path.format_map(
                {k: quote(str(v), safe="") for k, v in (params or {}).items()}
            )
        except KeyError as exc:
            raise ValueError(f"operation {op!r} needs the path parameter {exc.args[0]!r}") from None
        if body is not None and operation.method in ("GET", "DELETE"):
            raise ValueError(f"operation {op!r} ({operation.method}) takes no body")
        if stream:
            body = {**(body or {}), "stream": True}
        elif body and body.get("stream"):
            raise ValueError(f"use stream() for a streamed {op!r}")
        request = self._client().build_request(
            operation.method,
            self.base_url + path,
            params=_query(query),
            json=body if operation.method == "POST" else None,
            headers=self._headers(stream),
            timeout=self.timeout,
        )
        return operation, request

    async def _send(
        self, request: httpx.Request, *, stream: bool
    ) -> tuple[httpx.Response, bytes, AsyncIterator[bytes] | None]:
        """Send with retries. Returns the response with its body read (``stream=False``), or with
        its first body chunk and the iterator of the rest (``stream=True``): reading the first
        chunk inside the retry loop is what lets a stream be retried up to its first byte."""
        client = self._client()
        what = f"{request.method} {request.url.path}"
        for retry in range(self.max_retries + 1):
            last = retry == self.max_retries
            response: httpx.Response | None = None
            try:
                response = await client.send(request, stream=True)
                first, rest = b"", None
                if response.status_code >= 400 or not stream:
                    await response.aread()
                else:
                    rest = response.aiter_bytes()
                    first = await anext(rest, b"")
            except httpx.TimeoutException as exc:
                if response is not None:
                    await response.aclose()
                if last:
                    raise APITimeoutError(
                        f"{what} timed out after {self.max_retries + 1} attempt(s) "
                        f"(timeout {self.timeout.read}s)",
                        url=str(request.url),
                    ) from None
                await self._wait(what, f"timeout ({type(exc).__name__})", None, retry)
                continue
            except httpx.TransportError as exc:
                if response is not None:
                    await response.aclose()
                if last:
                    raise APIConnectionError(
                        f"{what} failed after {self.max_retries + 1} attempt(s): "
                        f"{type(exc).__name__}: {self._scrub(str(exc))}",
                        url=str(request.url),
                    ) from None
                await self._wait(what, f"connection error ({type(exc).__name__})", None, retry)
                continue
            except BaseException:  # cancelled mid-request: give the connection back
                if response is not None:
                    await response.aclose()
                raise
            status = response.status_code
            if status < 400:
                return response, first, rest
            if not last and _should_retry(response):
                await self._wait(what, f"HTTP {status}", response.headers, retry)
                continue
            raise self._status_error(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait(self, what: str, why: str, headers: httpx.Headers | None, retry: int) -> None:
        delay = retry_delay(headers, retry, self.retry_base_delay, self.retry_max_delay)
        log.info("%s: %s; retry %d of %d in %.2fs", what, why, retry + 1, self.max_retries, delay)
        await asyncio.sleep(delay)

    def _scrub(self, value: Any) -> Any:
        """``value`` (str, or JSON) with the API key replaced by ``***`` wherever it occurs."""
        if self._api_key is None:
            return value
        key = self._api_key.value
        if isinstance(value, str):
            return value.replace(key, "***")
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        return value

    def _scrub_stream_error(self, exc: StreamError) -> StreamError:
        """``exc``, or a copy without the API key if the server echoed it into an event."""
        if self._api_key is None or self._api_key.value not in f"{exc.message}{exc.data!r}":
            return exc
        return StreamError(self._scrub(exc.message), code=exc.code, event=exc.event, data=self._scrub(exc.data))

    def _status_error(self, response: httpx.Response) -> APIError:
        status = response.status_code
        text = self._scrub(response.text)
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, str):  # {"error": "Not found"} from simpler servers
            err = {"message": err}
        elif not isinstance(err, dict):
            err = body if isinstance(body, dict) and "message" in body else {}
        message = err.get("message") or (
            f"HTTP {status} {response.reason_phrase}" + (f": {text[:200]}" if text else "")
        )
        code = err.get("code")
        return error_for_status(status)(
            str(message),
            status=status,
            code=None if code is None else str(code),
            type=err.get("type"),
            param=err.get("param"),
            request_id=response.headers.get("x-request-id"),
            body=body if body is not None else text,
        )

    # -- the Backend protocol ---------------------------------------------------------------

    async def call(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> JSONResponse:
        """One request; the response's JSON object (with ``.headers``)."""
        _, request = self._request(op, params, body, query, stream=False)
        response, _, _ = await self._send(request, stream=False)
        try:
            data = response.json()
        except ValueError:
            raise APIError(
                f"{op}: the server answered HTTP {response.status_code} with a body that is not "
                f"JSON: {self._scrub(response.text[:200])!r}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from None
        if not isinstance(data, dict):
            raise APIError(
                f"{op}: expected a JSON object, got {type(data).__name__}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return JSONResponse(data, response.headers)

    def stream(
        self,
        op: str,
        params: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> AsyncIterator[Event]:
        """The events of a streamed operation, ``done`` included; ends after ``done``.

        Driven by the sync portal (``_portal.iterate``), the stream hands over each raw chunk to
        be decoded on the consumer's thread instead (see ``_portal.Deferred``): same events,
        same errors, but no decoded event waits in a cross-thread queue for the GC to scan."""
        mode = {"deferred": False}
        events = self._stream(op, params, body, mode)
        _portal.offer_deferred(events, lambda: mode.__setitem__("deferred", True))
        return events

    async def _stream(
        self, op: str, params: Mapping[str, str] | None, body: dict[str, Any] | None, mode: dict[str, bool]
    ) -> AsyncIterator[Any]:
        _, request = self._request(op, params, body, None, stream=True)
        response, first, chunks = await self._send(request, stream=True)
        what = f"{request.method} {request.url.path}"
        decoder = SSEDecoder(strict=True)
        count = 0
        try:
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise StreamError(
                    f"{what}: expected an event stream, got {kind or 'no content type'}: "
                    f"{self._scrub(first[:200].decode('utf-8', 'replace'))!r}"
                )
            assert chunks is not None
            if mode["deferred"]:
                async for item in self._deferred(what, request, decoder, first, chunks):
                    yield item
                return
            chunk = first
            try:
                while True:
                    batch: list[Event] = []
                    fault: StreamError | None = None
                    try:
                        decoder.take(chunk, batch)
                    except StreamError as exc:
                        fault = exc  # raised once the events before it are handed on
                    for event in batch:
                        count += 1
                        yield event
                    if fault is not None:
                        raise fault
                    if decoder.done:
                        return
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
            except StreamError as exc:
                raise self._scrub_stream_error(exc) from None
            except httpx.TimeoutException:
                raise APITimeoutError(
                    f"{what}: the stream was silent for more than {self.timeout.read}s "
                    f"after {count} event(s)",
                    url=str(request.url),
                ) from None
            except httpx.TransportError as exc:
                raise APIConnectionError(
                    f"{what}: the stream ended early: the connection dropped after {count} "
                    f"event(s) ({type(exc).__name__}: {self._scrub(str(exc))})",
                    url=str(request.url),
                ) from None
            for event in decoder.close():
                count += 1
                yield event
            if not decoder.done:
                raise APIConnectionError(
                    f"{what}: the stream ended early: the server closed it after {count} "
                    "event(s) without a 'done' event",
                    url=str(request.url),
                )
        finally:
            await response.aclose()


    async def _deferred(
        self, what: str, request: httpx.Request, decoder: SSEDecoder, first: bytes, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[_portal.Deferred]:
        """``_stream``'s loop for the portal: chunks out as :class:`_portal.Deferred` work that
        decodes them on the consumer's thread, with the same checks, counts and errors."""
        count = 0
        url = str(request.url)

        def decode(chunk: bytes) -> Iterator[Event]:
            nonlocal count
            try:
                for event in decoder.feed(chunk):
                    count += 1
                    yield event
            except StreamError as exc:
                raise self._scrub_stream_error(exc) from None
            return decoder.done  # True ends the iteration (and cancels this producer)

        def finish() -> Iterator[Event]:
            nonlocal count
            try:
                for event in decoder.close():
                    count += 1
                    yield event
            except StreamError as exc:
                raise self._scrub_stream_error(exc) from None
            if not decoder.done:
                raise APIConnectionError(
                    f"{what}: the stream ended early: the server closed it after {count} "
                    "event(s) without a 'done' event",
                    url=url,
                )
            return True

        def fail(error: Callable[[int], Exception]) -> Iterator[Event]:
            if not decoder.done:
                raise error(count)
            return True
            yield  # a generator, like the others

        chunk: bytes | None = first
        try:
            while chunk is not None:
                yield _portal.Deferred(functools.partial(decode, chunk))
                chunk = await anext(chunks, None)
        except httpx.TimeoutException:
            yield _portal.Deferred(functools.partial(fail, lambda n: APITimeoutError(
                f"{what}: the stream was silent for more than {self.timeout.read}s after {n} event(s)",
                url=url)))
            return
        except httpx.TransportError as exc:
            why = f"{type(exc).__name__}: {self._scrub(str(exc))}"
            yield _portal.Deferred(functools.partial(fail, lambda n: APIConnectionError(
                f"{what}: the stream ended early: the connection dropped after {n} event(s) ({why})",
                url=url)))
            return
        yield _portal.Deferred(finish)


def _should_retry(response: httpx.Response) -> bool:
    hint = response.headers.get("x-should-retry")
    if hint == "true":
        return True
    if hint == "false":
        return False
    status = response.status_code
    return status in _RETRY_STATUSES or status >= 500


def _query(query: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters as the API spells them: ``None`` dropped, booleans lower-case, lists
    repeated (``include[]=a&include[]=b``)."""
    if not query:
        return None
    out: dict[str, Any] = {}
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out[key] = [_scalar(v) for v in value]
        else:
            out[key] = _scalar(value)
    return out


def _scalar(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
