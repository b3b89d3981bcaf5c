"""Servers the benchmarks talk to over loopback, each in its own process (2 cores: the server on
one, the client on the other, as in real use).

``served_engine()`` is ``python -m jupyter_runs serve --port 0 --store :memory:``. ``bare_sse()``
is the baseline for it: the same uvicorn with a minimal ASGI app that streams ``n`` pre-encoded
``thread.message.delta`` events of the engine's shape (``delay`` seconds apart) for any POST and
answers any GET with a small JSON object, so the ratio isolates what the engine adds.

    python bench/_servers.py bare     # serve the bare app on a free port, print its URL
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """A server subprocess that prints ``... at URL ...`` on its first stdout line."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        if " at http://" not in banner:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"{self.argv} did not start: {banner!r} {err[-1500:]}")
        self.url = banner.split(" at ", 1)[1].split()[0]
        return self

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) the server process has used so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=5)


def served_engine() -> Server:
    # The benches write their model scripts under the temp dir; a served engine reads only there.
    return Server([sys.executable, "-m", "jupyter_runs", "serve", "--port", "0", "--store", ":memory:",
                   "--log-level", "warning", "--scripted-dir", tempfile.gettempdir()])


def bare_sse() -> Server:
    return Server([sys.executable, str(Path(__file__).resolve()), "bare"])


# -- the bare app ----------------------------------------------------------------------------------

def _delta(i: int) -> bytes:
    from jupyter_runs.wire import Event

    text = {"value": "word "} if i else {"value": "word ", "annotations": []}
    return Event("thread.message.delta", {"id": "msg_bare", "object": "thread.message.delta", "delta": {
        "content": [{"index": 0, "type": "text", "text": text}]}}).to_sse()


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] != "POST":
        data = json.dumps({"id": "asst_bare", "object": "assistant", "model": "bare"}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
        return
    params = json.loads(body or b"{}").get("metadata") or {}
    n, delay = int(params.get("n", 100)), float(params.get("delay", 0))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]})
    first, rest = _delta(0), _delta(1)
    for i in range(n):
        await send({"type": "http.response.body", "body": first if i == 0 else rest, "more_body": True})
        if delay:
            await asyncio.sleep(delay)
        elif i % 64 == 63:
            await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b"event: done\ndata: [DONE]\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _serve_bare() -> None:
    import socket

    import uvicorn

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"bare SSE app: serving at http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    config = uvicorn.Config(bare_app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1:] == ["bare"]:
        _serve_bare()
    else:
        sys.exit(__doc__)
