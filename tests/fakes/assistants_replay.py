"""A real HTTP server on 127.0.0.1 that replays scripted Assistants responses.

Tests say what the next requests get (``reply``, ``error``, ``stream``), in order, and
read back what the server received (``requests``). It is uvicorn serving a small ASGI app in a
thread, so the client under test goes through real sockets, real chunked transfer and real
connection drops; nothing in the client is patched.

A stream script is a list of parts: ``bytes`` (sent as one chunk), :class:`Pause` (silence on an
open connection, cut short when the server stops), :class:`WaitFor` (hold the stream until a
given request arrives, e.g. the cancel) and :data:`DROP` (the connection is closed
without finishing the chunked body, as when a proxy or the server dies mid-stream).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

from jupyter_runs.wire import Event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "examples"


@dataclass(frozen=True)
class Pause:
    """Send nothing for ``seconds`` (before the headers when it is ``Reply.before``)."""

    seconds: float


@dataclass(frozen=True)
class WaitFor:
    """Hold the stream until a request for ``route`` ("POST /threads/t/runs/r/cancel") has
    arrived, so a test can act mid-stream without racing a timer. Gives up after ``timeout``."""

    route: str
    timeout: float = 10.0


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: Close the connection mid-body.
DROP = _Drop()


@dataclass
class Reply:
    """One scripted response. ``chunks`` makes it a stream; ``match`` ("POST /threads/t/runs",
    path relative to ``/v1``) makes a request that doesn't fit fail loudly."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes | Pause | WaitFor | _Drop] | None = None
    match: str | None = None
    before: float = 0.0


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str  # relative to /v1, as sent (percent-escapes kept)
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


def sse(event: str, data: Any) -> bytes:
    """One SSE event in wire form."""
    return Event(event, data).to_sse()


def fixture_stream(name: str) -> bytes:
    """A repaired example stream from tests/fixtures/examples (``name`` without ``.sse``)."""
    return (FIXTURES / f"{name}.sse").read_bytes()


class AssistantsReplay:
    """Start with ``with AssistantsReplay() as server:``; ``server.url`` is the API root."""

    def __init__(self) -> None:
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.errors: list[str] = []  # scripting mistakes seen by the server (also answered 418)
        self._closing = False
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting --------------------------------------------------------------------------

    def reply(
        self,
        json: Any = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        match: str | None = None,
        before: float = 0.0,
    ) -> AssistantsReplay:
        return self._add(Reply(status, {} if json is None else json, dict(headers or {}), None, match, before))

    def error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        match: str | None = None,
    ) -> AssistantsReplay:
        body = {"error": {"message": message, "type": type, "param": None, "code": code}}
        return self._add(Reply(status, body, dict(headers or {}), None, match))

    def stream(
        self,
        *parts: bytes | Event | tuple[str, Any] | Pause | WaitFor | _Drop,
        status: int = 200,
        headers: dict[str, str] | None = None,
        match: str | None = None,
    ) -> AssistantsReplay:
        """An SSE response; ``(event, data)`` tuples and Events are encoded, bytes sent as is."""
        chunks: list[bytes | Pause | WaitFor | _Drop] = []
        for part in parts:
            if isinstance(part, tuple):
                part = sse(*part)
            elif isinstance(part, Event):
                part = part.to_sse()
            chunks.append(part)
        return self._add(Reply(status, None, dict(headers or {}), chunks, match))

    def _add(self, reply: Reply) -> AssistantsReplay:
        with self._lock:
            self._script.append(reply)
        return self

    @property
    def pending(self) -> int:
        """Scripted responses not yet asked for."""
        with self._lock:
            return len(self._script)

    def received(self, route: str | None = None) -> list[Received]:
        """Requests received so far, optionally only those for ``"METHOD /path"``."""
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if route is None or r.route == route]

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._sock is not None, "server not started"
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> AssistantsReplay:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: no Nagle delay between the headers and body writes
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._app, interface="asgi3", lifespan="off", log_level="critical", access_log=False
        )
        self._server = _QuickServer(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="assistants-replay", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the replay server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> AssistantsReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the ASGI app -----------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._serve(scope, receive, send)
        except Exception as exc:  # a bug in a script or here: make it visible to the test
            self.errors.append(f"replay server crashed: {exc!r}")
            raise

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]  # as sent: %-escapes kept
        rec = Received(
            method=scope["method"],
            path=path[3:] if path.startswith("/v1/") else path,
            query=dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True)),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(rec)
            reply = self._script.popleft() if self._script else None
        problem = None
        if reply is None:
            problem = f"replay server: no scripted response for {rec.route}"
        elif reply.match is not None and reply.match != rec.route:
            problem = f"replay server: expected {reply.match}, got {rec.route}"
        if problem is not None:
            self.errors.append(problem)
            reply = Reply(418, {"error": {"message": problem, "type": "replay_error", "param": None, "code": None}})
        assert reply is not None
        if reply.before:
            await self._pause(reply.before)
        if reply.chunks is None:
            payload = json.dumps(reply.json).encode()
            headers = {"content-type": "application/json", **reply.headers}
            await send({"type": "http.response.start", "status": reply.status, "headers": _h(headers)})
            await send({"type": "http.response.body", "body": payload})
            return
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **reply.headers}
        await send({"type": "http.response.start", "status": reply.status, "headers": _h(headers)})
        for part in reply.chunks:
            if isinstance(part, Pause):
                await self._pause(part.seconds)
            elif isinstance(part, WaitFor):
                await self._wait_for(part)
            elif part is DROP:
                return  # uvicorn closes a connection whose response is unfinished
            else:
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _wait_for(self, part: WaitFor) -> None:
        end = time.monotonic() + part.timeout
        while not self._closing and not self.received(part.route):
            if time.monotonic() > end:
                self.errors.append(f"replay server: waited {part.timeout}s for {part.route} in vain")
                return
            await asyncio.sleep(0.005)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but end early when the server stops so teardown never waits on a script."""
        end = time.monotonic() + seconds
        while not self._closing:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.02))


class _QuickServer(uvicorn.Server):
    """uvicorn, minus the 0.1 s polling and graceful waits on shutdown: a test server starts and
    stops once per test, and nothing it serves needs draining (open scripts are cut off)."""

    async def main_loop(self) -> None:
        while not self.should_exit:
            await asyncio.sleep(0.005)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()


def _h(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
