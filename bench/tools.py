"""Tool round trip: from ``thread.run.requires_action`` to the continuation's first event.

A ``scripted`` model asks for one trivial tool call (``add(a, b)``), then answers. The run is
streamed with ``RunStream.stream_async``, which runs the tool on the caller's loop and continues
through ``submit_tool_outputs(stream=True)``; ``on_event`` timestamps the ``requires_action``
event and the first event after it. In-process (``AsyncClient()``, the embedded engine) and served
(``jupyter-runs serve`` in a subprocess, ``HTTPBackend``). Baseline: one plain request round trip
(``assistants.retrieve``) on the same backend, so the ratio reads "costs N round trips".
Goal: under 2 ms in-process (median of the trials).

    python bench/tools.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

try:
    from bench._common import Row, main
    from bench._servers import served_engine
except ImportError:
    from _common import Row, main
    from _servers import served_engine

from jupyter_runs.backends.http import HTTPBackend
from jupyter_runs.client import AsyncClient
from jupyter_runs.wire import Event


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def script(folder: Path) -> Path:
    path = folder / "tool.json"
    path.write_text(json.dumps({"delay": 0, "turns": [
        {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
        {"text": "The sum is 3."}]}))
    return path


async def round_trips(client: AsyncClient, path: Path, trials: int) -> tuple[float, float]:
    """Median seconds from requires_action to the continuation's first event, and median plain
    round trip."""
    assistant = await client.assistants.create(model=f"scripted:{path}", tools=[add])
    gaps, trips = [], []
    for _ in range(trials):
        thread = await client.threads.create(messages=[{"role": "user", "content": "add 1 and 2"}])
        marks: dict[str, float] = {}
        calls: list[object] = []

        def on_event(event: Event, marks: dict[str, float] = marks) -> None:
            if event.event == "thread.run.requires_action":
                marks["action"] = time.perf_counter()
            elif "action" in marks and "continued" not in marks and event.event != "done":
                marks["continued"] = time.perf_counter()

        stream = await client.runs.create(thread.id, assistant_id=assistant.id, stream=True)
        run = await stream.stream_async(on_event=on_event, on_tool_call=calls.append, env={"add": add})
        if run["status"] != "completed" or len(calls) != 1 or "continued" not in marks:
            raise AssertionError(f"the tool run ended {run['status']} with {len(calls)} tool call(s)")
        gaps.append(marks["continued"] - marks["action"])
        start = time.perf_counter()
        await client.assistants.retrieve(assistant.id)
        trips.append(time.perf_counter() - start)
    return statistics.median(gaps), statistics.median(trips)


async def measure(quick: bool) -> list[Row]:
    trials = 3 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        path = script(Path(tmp))
        client = AsyncClient(store=":memory:")
        try:
            local_gap, local_trip = await round_trips(client, path, trials)
        finally:
            await client.aclose()
        with served_engine() as server:
            client = AsyncClient(backend=HTTPBackend(server.url, max_retries=0))
            try:
                served_gap, served_trip = await round_trips(client, path, trials)
            finally:
                await client.aclose()
    return [
        Row(f"tools in-process: requires_action -> continuation (median of {trials})", local_gap * 1e3,
            local_trip * 1e3, "ms", "< 2 ms", local_gap < 0.002, "1 round trip"),
        Row(f"tools served: requires_action -> continuation (median of {trials})", served_gap * 1e3,
            served_trip * 1e3, "ms", "-", None, "1 round trip"),
    ]


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    main(run, __doc__)
