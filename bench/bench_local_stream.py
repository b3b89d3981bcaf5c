"""Per-event overhead of the embedded engine's streams (goal: <= 20 us/event in-process).

One scripted reply of N words (no delay) streamed through ``LocalBackend.stream``: from another
event loop (events cross threads in batches), and from a sync caller through ``_portal.iterate``.
Prints microseconds per event; timing lives here, never in the tests.

    python bench/bench_local_stream.py [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from jupyter_runs import _portal
from jupyter_runs.backends.local.backend import LocalBackend


def write_script(folder: Path, words: int) -> str:
    path = folder / "long.json"
    path.write_text(json.dumps({"delay": 0, "turns": [{"text": "w " * words}]}))
    return f"scripted:{path}"


async def cross_loop(model: str) -> tuple[int, float]:
    backend = LocalBackend(":memory:")
    try:
        a = await backend.call("create_assistant", body={"model": model})
        t = await backend.call("create_thread", body={"messages": [{"role": "user", "content": "go"}]})
        start = time.perf_counter()
        count = 0
        async for _ in backend.stream("create_run", {"thread_id": t["id"]}, body={"assistant_id": a["id"]}):
            count += 1
        return count, time.perf_counter() - start
    finally:
        await backend.aclose()


def sync_portal(model: str) -> tuple[int, float]:
    backend = LocalBackend(":memory:")
    try:
        a = _portal.call(lambda: backend.call("create_assistant", body={"model": model}))
        start = time.perf_counter()
        count = 0
        for _ in _portal.iterate(lambda: backend.stream("create_thread_and_run",
                                                        body={"assistant_id": a["id"]})):
            count += 1
        return count, time.perf_counter() - start
    finally:
        _portal.call(backend.aclose)


def main() -> None:
    words = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as folder:
        model = write_script(Path(folder), words)
        for name, result in (("other loop", asyncio.run(cross_loop(model))),
                             ("sync (portal)", sync_portal(model))):
            count, seconds = result
            print(f"{name:14} {count} events in {seconds:.2f} s: {seconds / count * 1e6:.1f} us/event")


if __name__ == "__main__":
    main()
