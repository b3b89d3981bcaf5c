"""The served engine writes a streamed run in the engine's batches: one body chunk carries every
event that was ready, so a long reply costs far fewer writes than it has events, and the bytes
are exactly the events' SSE, in order. Counted at the ASGI boundary (what uvicorn writes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from jupyter_runs.backends.local.backend import LocalBackend
from jupyter_runs.server import create_app
from jupyter_runs.sse import decode


async def post_stream(app: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ASGI message the app sends for a streamed POST (the client never disconnects)."""
    sent: list[dict[str, Any]] = []
    request = {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
    delivered = False
    forever = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return request
        await forever.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
             "query_string": b""}
    await app(scope, receive, send)
    return sent


def test_a_long_streamed_reply_is_written_in_batches(script: Callable[..., str]) -> None:
    words = 3000
    backend = LocalBackend(store=":memory:")
    app = create_app(backend)

    async def go() -> list[dict[str, Any]]:
        assistant = await backend.call("create_assistant", body={"model": script([{"text": "word " * words}])})
        thread = await backend.call("create_thread", body={"messages": [{"role": "user", "content": "go"}]})
        sent = await post_stream(app, f"/v1/threads/{thread['id']}/runs",
                                 {"assistant_id": assistant["id"], "stream": True})
        await backend.aclose()
        return sent

    sent = asyncio.run(go())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    chunks = [m["body"] for m in sent[1:] if m["type"] == "http.response.body" and m["body"]]
    events = decode(b"".join(chunks))
    assert [e.event for e in events].count("thread.message.delta") == words
    assert events[-1].event == "done" and events[-2].event == "thread.run.completed"
    text = "".join(e.data["delta"]["content"][0]["text"]["value"] for e in events if e.event == "thread.message.delta")
    assert text == "word " * words
    # The scripted model hands the loop over every 64 words, so batches hold dozens of events;
    # one write per event would be more than 3,000 chunks.
    assert len(chunks) <= len(events) // 10, f"{len(chunks)} writes for {len(events)} events"
