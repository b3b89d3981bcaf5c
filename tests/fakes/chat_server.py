"""A fake OpenAI-compatible Chat Completions server on a real loopback socket.

It speaks just enough HTTP/1.1 (one request per connection, chunked SSE responses) to be driven by
httpx like a real server, and it can misbehave on purpose: answer 429 or 500 with a JSON error,
send an ``{"error": ...}`` chunk in the middle of a stream, or cut the connection mid-stream. A raw
asyncio server (not uvicorn) because a dropped connection must be a socket closed mid-body, which
an ASGI app cannot produce.

The server runs its own event loop on a daemon thread, so sync and async tests (on any loop) use
it alike. Tests queue :class:`Reply` objects with :meth:`FakeChatServer.add`; each request takes
the next one (or the ``default`` reply) and is recorded in :attr:`FakeChatServer.requests`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MODEL = "fake-model"


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 answers ``error`` as a JSON body. With 200, each of
    ``chunks`` is sent as one ``data:`` event, then ``end``: ``"done"`` (``data: [DONE]``),
    ``"eof"`` (the body just ends), or ``"drop"`` (the socket is closed mid-body)."""

    chunks: list[Any] = field(default_factory=list)
    status: int = 200
    error: dict[str, Any] | None = None
    end: str = "done"
    delay: float = 0.0  # seconds between chunks
    headers: dict[str, str] = field(default_factory=dict)
    #: After the chunks, ``: ping`` comments this many times, ``delay`` (or 0.05 s) apart, before
    #: ``end``: a server that keeps the connection alive without sending anything.
    keepalives: int = 0
    #: With ``status`` 200: answer this as a JSON body instead of a stream (a server that reports
    #: an error with 200).
    json_body: Any = None


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, *, usage: dict[str, int] | None = None,
          choices: bool = True) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    data: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                            "model": MODEL, "choices": []}
    if choices:
        data["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        data["usage"] = usage
    return data


def usage_chunk(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:
    """The final chunk ``stream_options.include_usage`` asks for: no choices, only usage."""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if reasoning or cached:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return chunk(usage=usage, choices=False)


def text_reply(*pieces: str, finish: str = "stop", usage: tuple[int, ...] | None = (7, 3),
               reasoning: list[list[str]] | None = None) -> Reply:
    """A streamed text answer, one chunk per piece (after a role-only first chunk, as OpenAI does).
    ``reasoning`` parts stream first as ``reasoning_content`` deltas (vLLM, DeepSeek, llama.cpp),
    parts separated by a blank line."""
    chunks = [chunk({"role": "assistant", "content": ""})]
    for k, part in enumerate(reasoning or ()):
        for i, piece in enumerate(part):
            chunks.append(chunk({"reasoning_content": ("\n\n" if k and not i else "") + piece}))
    chunks += [chunk({"content": p}) for p in pieces]
    chunks.append(chunk({}, finish))
    if usage:
        chunks.append(usage_chunk(*usage))
    return Reply(chunks)


def tool_calls_reply(calls: list[tuple[str, str, str]], *, index_zero: bool = False, split: int = 2,
                     usage: tuple[int, int] | None = (11, 5)) -> Reply:
    """Streamed tool calls ``(id, name, arguments_json)``. The arguments arrive in ``split`` pieces.

    Normally call k has ``index: k`` and its pieces interleave with nothing else. ``index_zero``
    plays the quirk of servers that send every call with ``index: 0`` and tell calls apart only
    by a new ``id``.
    """
    chunks = [chunk({"role": "assistant", "content": None})]
    for k, (call_id, name, args) in enumerate(calls):
        index = 0 if index_zero else k
        step = max(1, -(-len(args) // split))
        pieces = [args[i:i + step] for i in range(0, len(args), step)] or [""]
        chunks.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": pieces[0]}}]}))
        for piece in pieces[1:]:
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, "tool_calls"))
    if usage:
        chunks.append(usage_chunk(*usage))
    return Reply(chunks)


def error_reply(status: int, message: str, *, type: str = "server_error", code: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """An HTTP error with an OpenAI-style error body."""
    return Reply(status=status, error={"message": message, "type": type, "param": None, "code": code},
                 headers=headers or {})


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


class FakeChatServer:
    """``POST /v1/chat/completions`` answering the queued replies; everything else is a 404."""

    route = "/v1/chat/completions"

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default: Reply = text_reply("Hello", " from", " the", " fake", " model.")
        self.requests: list[Request] = []
        # Per streamed reply: "complete", "dropped" (on purpose) or "client closed" (a cancel).
        self.outcomes: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeChatServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def open_server() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(open_server())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-chat-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                # Open handlers are cancelled so a test that stops mid-stream doesn't hang here.
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.cancel()

        asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    # -- HTTP -----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            if request.method != "POST" or request.path != self.route:
                await self._send_json(writer, 404, {"error": {"message": f"no route {request.path}",
                                                              "type": "invalid_request_error",
                                                              "param": None, "code": None}})
                return
            reply = self.replies.popleft() if self.replies else self.default
            if reply.status != 200:
                await self._send_json(writer, reply.status, {"error": reply.error}, reply.headers)
                return
            if reply.json_body is not None:
                await self._send_json(writer, 200, reply.json_body, reply.headers)
                return
            try:
                await self._stream(writer, reply)
            except ConnectionError:
                self.outcomes.append("client closed")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away before sending its request
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        body = json.loads(raw) if raw else None
        return Request(method, path, headers, body)

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, body: Any,
                         headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n{extra}connection: close\r\n\r\n".encode() + payload
        )
        await writer.drain()

    def frame(self, item: Any) -> str:
        """One SSE event for a scripted chunk (a string goes out as it is, after ``data:``)."""
        return f"data: {json.dumps(item) if not isinstance(item, str) else item}\n\n"

    async def _stream(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")

        def send(text: str) -> None:
            data = text.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        for item in reply.chunks:
            send(self.frame(item))
            await writer.drain()
            if reply.delay:
                await asyncio.sleep(reply.delay)
        for _ in range(reply.keepalives):
            send(": ping\n\n")
            await writer.drain()
            await asyncio.sleep(reply.delay or 0.05)
        if reply.end == "drop":
            # Cut the connection mid-body: the chunked body never gets its terminating chunk.
            writer.transport.abort()
            self.outcomes.append("dropped")
            return
        if reply.end == "done":
            send("data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.outcomes.append("complete")
