"""The embedded engine served as the Assistants HTTP API: a small hand-written ASGI app.

Routes come from :data:`jupyter_runs.backends.OPERATIONS` (the one table the HTTP client uses
too), and each request becomes exactly one ``backend.call`` or ``backend.stream``: the app only
adapts HTTP (auth, JSON, status codes, SSE, CORS) and holds no Assistants logic. Bodies and query
parameters are checked against the spec subset first (``_requests.py``), so the engine only ever
sees requests the spec allows.

Who may call (README, "Serving the engine"). A browser sends any page's "simple" requests to
127.0.0.1 without asking, and a page whose name is rebound to 127.0.0.1 is same-origin to it, so:
a request from a browser whose ``Origin`` is not one of ``cors_origins`` is refused (403); a body
must be ``application/json``, which no form or no-cors fetch can send; and without an API key
only loopback ``Host`` names are answered (Starlette's ``TrustedHostMiddleware``), which a rebound
name is not. With a key the key is the guard (a browser never adds it by itself), so any ``Host``
is answered, e.g. behind a proxy. Starlette's ``CORSMiddleware`` answers preflights and adds the
CORS headers for the configured origins.

A streaming response whose client goes away keeps draining the run's events instead of closing the
stream: under Assistants semantics a run goes on until it ends or is cancelled, and closing the
backend's stream early could otherwise cut it short.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ._requests import check_body, check_query, parse_body
from .backends import OPERATIONS, Backend, Operation
from .errors import (
    APIError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
)
from .wire import Event

log = logging.getLogger("jupyter_runs.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PREFIX = "/v1"
MAX_BODY = 32 * 1024 * 1024  # a request body larger than this is refused (413), not buffered
_ALLOWED_HEADERS = ("authorization", "content-type", "openai-beta", "openai-organization",
                    "openai-project")
# Without a key these are the only Host names answered: a DNS-rebound name is none of them.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class MethodNotAllowedError(APIError):
    status = 405
    default_type = "invalid_request_error"
    allow: tuple[str, ...] = ()  # the methods the path does accept (the Allow header)


class PayloadTooLargeError(APIError):
    status = 413
    default_type = "invalid_request_error"


class UnsupportedMediaTypeError(APIError):
    status = 415
    default_type = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class _Route:
    op: Operation
    pattern: re.Pattern[str]
    literal_segments: int  # more literal segments wins: ``/threads/runs`` beats ``/threads/{id}``


def _compile(op: Operation) -> _Route:
    parts = op.path.strip("/").split("/")
    regex = "/".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") and p.endswith("}") else re.escape(p)
        for p in parts
    )
    literal = sum(1 for p in parts if not p.startswith("{"))
    return _Route(op, re.compile(f"^{re.escape(PREFIX)}/{regex}/?$"), literal)


_ROUTES = sorted((_compile(op) for op in OPERATIONS.values()), key=lambda r: -r.literal_segments)


def match(method: str, path: str) -> tuple[Operation, dict[str, str]]:
    """The operation and path parameters for a request; ``NotFoundError`` when no route has the
    path, ``MethodNotAllowedError`` (naming the allowed methods) when only the method is wrong."""
    allowed: list[str] = []
    for route in _ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.op.method == method:
            return route.op, found.groupdict()  # scope["path"] is already percent-decoded
        allowed.append(route.op.method)
    if allowed:
        methods = sorted(set(allowed))
        error = MethodNotAllowedError(f"{method} is not allowed on {path}; use {' or '.join(methods)}",
                                      code="method_not_allowed")
        error.allow = tuple(methods)
        raise error
    raise NotFoundError(f"Invalid URL ({method} {path})", code="unknown_url")


def _query(raw: bytes) -> dict[str, list[str]]:
    """Every value of each query parameter, in order (``check_query`` decides what may repeat)."""
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


class AssistantsApp:
    """The ASGI app. Create it with :func:`create_app`."""

    def __init__(self, backend: Backend, *, api_key: str | None = None,
                 cors_origins: Iterable[str] = ()) -> None:
        if api_key is not None and not api_key.strip():
            # `--api-key "$KEY"` with KEY unset: serving with no auth would be the silent surprise
            raise ValueError("the API key is empty; pass a non-empty key, or None for no auth")
        self.backend = backend
        self._api_key = api_key
        self.cors_origins = tuple(cors_origins)
        entry: Any = self._http
        if self.cors_origins:
            entry = CORSMiddleware(entry, allow_origins=self.cors_origins,
                                   allow_methods=("GET", "POST", "DELETE"),
                                   allow_headers=_ALLOWED_HEADERS, expose_headers=("x-request-id",))
        if api_key is None:
            entry = TrustedHostMiddleware(entry, allowed_hosts=LOOPBACK_HOSTS, www_redirect=False)
        self._entry = entry

    def __repr__(self) -> str:
        auth = "bearer" if self._api_key else "none"
        return f"AssistantsApp(backend={type(self.backend).__name__}, auth={auth})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._entry(scope, receive, send)
        # websockets are not part of the API: returning without accepting refuses them

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.backend.aclose()
                except Exception:  # shutting down anyway; say what went wrong
                    log.exception("closing the backend failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP -----------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = f"req_{secrets.token_hex(12)}"
        base = [(b"x-request-id", request_id.encode())]
        method = scope["method"]
        try:
            self._check_origin(headers.get("origin"))
            self._authorize(headers.get("authorization"))
            op, params = match(method, scope["path"])
            query = check_query(op.name, _query(scope.get("query_string", b"")))
            body = None
            if op.method == "POST":
                raw = await self._read(receive)
                if raw.strip() and not _is_json(headers.get("content-type")):
                    raise UnsupportedMediaTypeError(
                        f"{op.method} {op.path} takes a JSON body: send it with "
                        "'Content-Type: application/json'.", code="unsupported_media_type")
                body = parse_body(raw, f"{op.method} {op.path}")
                check_body(op.name, body)
            if op.streams and body is not None and body.get("stream") is True:
                await self._stream(send, receive, base, _batches(self.backend, op.name, params, body))
                return
            result = await self.backend.call(op.name, params, body=body, query=query or None)
        except APIError as exc:
            if isinstance(exc, MethodNotAllowedError):
                base.append((b"allow", ", ".join(exc.allow).encode()))
            await self._json(send, exc.status or 500, exc.to_body(), base)
            return
        except Exception:
            log.exception("request %s %s failed [%s]", method, scope["path"], request_id)
            error = InternalServerError("The server had an error while processing your request.",
                                        code="server_error")
            await self._json(send, 500, error.to_body(), base)
            return
        await self._json(send, 200, result, base)

    def _check_origin(self, origin: str | None) -> None:
        """Refuse a browser request from a page not in ``cors_origins``: without this, any web
        page could make the browser POST here (CORS only hides the answer, it does not stop the
        request)."""
        if origin is None or "*" in self.cors_origins or origin in self.cors_origins:
            return
        raise PermissionDeniedError(
            f"Requests from the web page at {origin[:200]} are not allowed; start the server "
            "with --cors-origin ORIGIN to allow a page's origin.", code="origin_not_allowed")

    def _authorize(self, header: str | None) -> None:
        if self._api_key is None:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Missing bearer authentication: send the server's API key as "
                "'Authorization: Bearer KEY'.",
                code="missing_api_key",
            )
        # compare_digest: the time taken says nothing about how much of the key matched.
        if not hmac.compare_digest(token.strip().encode(), self._api_key.encode()):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLargeError(f"request body larger than {MAX_BODY} bytes",
                                           code="payload_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _json(self, send: Send, status: int, payload: Any,
                    headers: list[tuple[bytes, bytes]]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()), *headers],
        })
        await send({"type": "http.response.body", "body": data})

    async def _stream(self, send: Send, receive: Receive, headers: list[tuple[bytes, bytes]],
                      events: AsyncIterator[list[Event]]) -> None:
        """SSE from batches of ``events``, one body chunk per batch. The first batch is awaited
        before the status line goes out, so an error the backend raises up front (unknown thread,
        bad parameters) is a normal JSON error response with its status; an error after that
        becomes an ``error`` event, then ``done``."""
        iterator = aiter(events)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            first = None
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"), *headers],
        })
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            if first is not None:
                await _send_event(send, gone, first)
                async for event in iterator:
                    await _send_event(send, gone, event)
        except APIError as exc:
            await _send_event(send, gone, Event("error", exc.to_body()["error"]))
            await _send_event(send, gone, Event("done", "[DONE]"))
        except Exception:
            log.exception("a stream failed mid-way")
            error = InternalServerError("The server had an error while streaming the run.",
                                        code="server_error")
            await _send_event(send, gone, Event("error", error.to_body()["error"]))
            await _send_event(send, gone, Event("done", "[DONE]"))
        finally:
            watcher.cancel()
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _batches(backend: Backend, op: str, params: Mapping[str, str],
                   body: dict[str, Any]) -> AsyncIterator[list[Event]]:
    """The backend's stream in batches: its own when it has them (the embedded engine), else one
    event a batch. A write per batch, not per event, is most of what the served engine saves
    against a bare server (issue 18)."""
    batches = getattr(backend, "stream_batches", None)
    if batches is not None:
        async for batch in batches(op, params, body=body):
            yield batch
        return
    async for event in backend.stream(op, params, body=body):
        yield [event]


async def _send_event(send: Send, gone: asyncio.Event, event: Event | list[Event]) -> None:
    # After a disconnect the events are still consumed (the run continues), just not sent.
    if not gone.is_set():
        data = event.to_sse() if isinstance(event, Event) else b"".join([e.to_sse() for e in event])
        try:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:
            gone.set()


def create_app(backend: Backend, *, api_key: str | None = None,
               cors_origins: Iterable[str] = ()) -> AssistantsApp:
    """The Assistants API over ``backend`` under ``/v1``. ``api_key``: require
    ``Authorization: Bearer KEY`` (an empty key is a ``ValueError``); without one only loopback
    ``Host`` names are answered. ``cors_origins``: origins (or ``"*"``) allowed to call from a
    browser; none by default, and a browser request from any other origin is refused."""
    return AssistantsApp(backend, api_key=api_key, cors_origins=cors_origins)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_warnings(host: str, api_key: str | None, cors_origins: Iterable[str] = ()) -> list[str]:
    """What the user must hear before serving with this configuration (the CLI prints these)."""
    out: list[str] = []
    if api_key is None and not is_loopback(host):
        out.append(
            f"WARNING: serving on {host} WITHOUT an API key. Browsers are held to Host names "
            "127.0.0.1/localhost, but any program that can reach this port can read every thread "
            "and start runs. Set --api-key or JUPYTER_RUNS_API_KEY, or bind 127.0.0.1.")
    if api_key is None and "*" in tuple(cors_origins):
        out.append(
            "WARNING: --cors-origin '*' WITHOUT an API key: every web page you open can read "
            "your threads and start runs here. Name the origins you use, or set an API key.")
    return out


def serve(
    host: str = "127.0.0.1",
    port: int = 8321,
    store: str | None = None,
    api_key: str | None = None,
    *,
    cors_origins: Iterable[str] = (),
    scripted_dir: str | None = None,
    model_config: dict[str, Any] | None = None,
    log_level: str = "info",
    on_ready: Callable[[str, str], None] | None = None,
    warn: bool = True,
    cassette: str | None = None,
    cassette_mode: str = "off",
) -> None:
    """Serve the embedded engine (store ``store``, default the Jupyter data dir) until stopped.

    ``scripted_dir``: the directory ``scripted:PATH`` models are read from (relative paths resolve
    against it, and no path outside it is opened: clients pick the model id). Default: the working
    directory. The socket is bound here, before uvicorn starts, so ``port=0`` works and
    ``on_ready(url, store_path)`` gets the real URL (the CLI prints it; tests read it). A store
    that can't be opened or an address that can't be bound raise ``OSError`` saying which; an
    empty ``api_key`` raises ``ValueError``. ``warn``: log :func:`exposure_warnings` (the CLI
    prints them itself).
    """
    import os
    import socket
    import sqlite3

    import uvicorn

    from .backends.local.backend import LocalBackend
    from .backends.local.store import default_store_path

    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty; pass a non-empty key, or None for no auth")
    for warning in exposure_warnings(host, api_key, cors_origins) if warn else ():
        log.warning(warning)
    config_ = {"scripted_dir": os.path.abspath(scripted_dir or os.getcwd()), **(model_config or {})}
    try:
        # The server's own cassette only: a run's metadata never names one (run_cassettes=False).
        backend = LocalBackend(store=store, model_config=config_, cassette=cassette,
                               cassette_mode=cassette_mode, run_cassettes=False)
    except (OSError, sqlite3.Error) as exc:
        raise OSError(f"cannot open the store {store or default_store_path()}: {exc}") from exc
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on TCP-proto sockets, and without it
    # Nagle + delayed ACK add ~40 ms to every response written in two sends (headers, body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections made between on_ready and uvicorn's start wait, not fail
    except OSError as exc:
        sock.close()
        backend.store.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    app = create_app(backend, api_key=api_key, cors_origins=cors_origins)
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
    if on_ready is not None:
        on_ready(f"http://{shown}:{bound}{PREFIX}", backend.store.path)
    uvicorn.Server(config).run(sockets=[sock])
