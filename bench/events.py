"""Event pipeline: a 200,000-event Assistants stream, SSE bytes to folded snapshots.

Ours: ``RunStream`` (``AsyncClient`` + ``stream_async``, and ``Client`` + ``until_done``) over
``HTTPBackend``, decoding with ``jupyter_runs.sse`` and folding with ``jupyter_runs.events``.
Baselines over the very same bytes, in the same process: openai-python's ``AssistantEventHandler``
(``client.beta.threads.runs.stream``, async and sync; pinned in bench/requirements.txt) and the
floor, a minimal SSE split + ``json.loads`` per event that keeps no state. Both HTTP clients get
the bytes from an ``httpx.MockTransport`` in 16 KiB chunks, so no socket noise enters the ratio.

The stream: run created/queued/in_progress, then 4 cycles of a tool-call step (two parallel
function calls whose arguments arrive in small deltas, one call after the other) and a message step (word-sized text
deltas), then run completed and ``done``; 80% of the events are text deltas.
openai-python folds about 5k events/s (the same at 50,000 and 200,000 events), so to keep
run_all.py short it reads a 50,000-event stream of the same make-up (``BENCH_OPENAI_EVENTS=200000``
for the full size), and ours is measured on that same stream for the comparison. Every side is
timed the same way: CPU time of this process (all threads), in turns, the same number of repeats,
best kept. Goals: >= 3x openai-python's events/s; >= 1/1.5 of the floor's events/s.

    python bench/events.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

try:
    from bench._common import Row, interleaved, main
except ImportError:  # run as a script: bench/ is on sys.path, the repo root is added by _common
    from _common import Row, interleaved, main

from jupyter_runs.backends.http import HTTPBackend
from jupyter_runs.client import AsyncClient, Client
from jupyter_runs.wire import Event

CHUNK = 16 * 1024
WORDS = ("the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog, ", "and\n")
ARGS = ('{"', 'region', '": "', 'north', '", "', 'quarter', '": ', '3', ', "x": ', '0', '}')


def _run(status: str, now: int = 1710330640) -> dict:
    return {"id": "run_1", "object": "thread.run", "created_at": now, "assistant_id": "asst_1",
            "thread_id": "thread_1", "status": status, "started_at": now, "expires_at": now + 600,
            "cancelled_at": None, "failed_at": None, "completed_at": None, "required_action": None,
            "last_error": None, "model": "gpt-4o", "instructions": None, "tools": [], "metadata": {},
            "temperature": 1.0, "top_p": 1.0, "max_completion_tokens": None, "max_prompt_tokens": None,
            "truncation_strategy": {"type": "auto", "last_messages": None}, "incomplete_details": None,
            "usage": None, "response_format": "auto", "tool_choice": "auto", "parallel_tool_calls": True}


def _step(sid: str, kind: str, status: str, details: dict) -> dict:
    return {"id": sid, "object": "thread.run.step", "created_at": 1710330641, "run_id": "run_1",
            "assistant_id": "asst_1", "thread_id": "thread_1", "type": kind, "status": status,
            "cancelled_at": None, "completed_at": None, "expires_at": None, "failed_at": None,
            "last_error": None, "step_details": details, "usage": None}


def _message(mid: str, status: str, text: str | None) -> dict:
    content = [] if text is None else [{"type": "text", "text": {"value": text, "annotations": []}}]
    return {"id": mid, "object": "thread.message", "created_at": 1710330641, "assistant_id": "asst_1",
            "thread_id": "thread_1", "run_id": "run_1", "status": status, "incomplete_details": None,
            "incomplete_at": None, "completed_at": None, "role": "assistant", "content": content,
            "metadata": {}, "attachments": []}


def stream_events(total: int, cycles: int = 4) -> list[Event]:
    """About ``total`` events of one run (exactly ``total`` when it is large enough)."""
    fixed = 5 + cycles * 9  # run lifecycle + done, and per cycle 2x(step created/in_progress/completed) + 3 message events
    deltas = max(total - fixed, 2 * cycles)
    tool_deltas = deltas // 5 // cycles
    text_deltas = deltas // cycles - tool_deltas
    extra = deltas - cycles * (tool_deltas + text_deltas)
    events = [Event("thread.run.created", _run("queued")), Event("thread.run.queued", _run("queued")),
              Event("thread.run.in_progress", _run("in_progress"))]
    for c in range(cycles):
        sid, mid, mstep = f"step_t{c}", f"msg_{c}", f"step_m{c}"
        details = {"type": "tool_calls", "tool_calls": []}
        events += [Event("thread.run.step.created", _step(sid, "tool_calls", "in_progress", details)),
                   Event("thread.run.step.in_progress", _step(sid, "tool_calls", "in_progress", details))]
        half = tool_deltas // 2  # parallel calls stream one after the other, as servers send them
        for i in range(tool_deltas):
            index, j = (0, i) if i < half else (1, i - half)
            call: dict = {"index": index, "type": "function", "function": {"arguments": ARGS[j % len(ARGS)]}}
            if j == 0:
                call.update(id=f"call_{c}_{index}", function={"name": "load_sales", "arguments": ""})
            events.append(Event("thread.run.step.delta", {"id": sid, "object": "thread.run.step.delta", "delta": {
                "step_details": {"type": "tool_calls", "tool_calls": [call]}}}))
        events.append(Event("thread.run.step.completed", _step(sid, "tool_calls", "completed", details)))
        msg_details = {"type": "message_creation", "message_creation": {"message_id": mid}}
        events += [Event("thread.run.step.created", _step(mstep, "message_creation", "in_progress", msg_details)),
                   Event("thread.run.step.in_progress", _step(mstep, "message_creation", "in_progress", msg_details)),
                   Event("thread.message.created", _message(mid, "in_progress", None)),
                   Event("thread.message.in_progress", _message(mid, "in_progress", None))]
        text = []
        n = text_deltas + (extra if c == cycles - 1 else 0)
        for i in range(n):
            word = WORDS[i % len(WORDS)]
            text.append(word)
            events.append(Event("thread.message.delta", {"id": mid, "object": "thread.message.delta", "delta": {
                "content": [{"index": 0, "type": "text", "text": {"value": word}}]}}))
        events += [Event("thread.message.completed", _message(mid, "completed", "".join(text))),
                   Event("thread.run.step.completed", _step(mstep, "message_creation", "completed", msg_details))]
    events += [Event("thread.run.completed", _run("completed")), Event("done", "[DONE]")]
    return events


def sse_chunks(events: list[Event], size: int = CHUNK) -> list[bytes]:
    """The stream's bytes cut into fixed-size chunks (cuts fall mid-line, as on a network)."""
    body = b"".join(e.to_sse() for e in events)
    return [body[i : i + size] for i in range(0, len(body), size)]


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _transport(chunks: list[bytes]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks)))


# -- ours ---------------------------------------------------------------------------------------

def _backend(chunks: list[bytes]) -> HTTPBackend:
    return HTTPBackend("http://bench.invalid/v1", "sk-bench", max_retries=0,
                       http_client_factory=lambda: httpx.AsyncClient(transport=_transport(chunks)))


def ours_async(chunks: list[bytes]) -> int:
    counts = [0]

    def count(_: object) -> None:
        counts[0] += 1

    async def go() -> None:
        client = AsyncClient(backend=_backend(chunks))
        stream = await client.runs.create("thread_1", assistant_id="asst_1", stream=True)
        await stream.stream_async(on_message_delta=count, on_run_step_delta=count, env={})
        assert stream.state.done and stream.status == "completed"
        await client.aclose()

    asyncio.run(go())
    return counts[0]


def ours_sync(chunks: list[bytes]) -> int:
    counts = [0]

    def count(_: object) -> None:
        counts[0] += 1

    client = Client(backend=_backend(chunks))
    stream = client.runs.create("thread_1", assistant_id="asst_1", stream=True)
    stream.until_done(on_message_delta=count, on_run_step_delta=count, env={})
    assert stream.state.done and stream.status == "completed"
    client.close()
    return counts[0]


# -- baselines ----------------------------------------------------------------------------------

def _openai_handlers():
    from openai import AssistantEventHandler, AsyncAssistantEventHandler

    class Counting(AssistantEventHandler):
        count = 0

        def on_message_delta(self, delta, snapshot) -> None:
            self.count += 1

        def on_run_step_delta(self, delta, snapshot) -> None:
            self.count += 1

    class AsyncCounting(AsyncAssistantEventHandler):
        count = 0

        async def on_message_delta(self, delta, snapshot) -> None:
            self.count += 1

        async def on_run_step_delta(self, delta, snapshot) -> None:
            self.count += 1

    return Counting, AsyncCounting


def openai_sync(chunks: list[bytes]) -> int:
    import openai

    counting, _ = _openai_handlers()
    handler = counting()
    client = openai.OpenAI(api_key="sk-bench", base_url="http://bench.invalid/v1", max_retries=0,
                           http_client=httpx.Client(transport=_transport(chunks)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with client.beta.threads.runs.stream(thread_id="thread_1", assistant_id="asst_1",
                                             event_handler=handler) as stream:
            stream.until_done()
    assert handler.current_run and handler.current_run.status == "completed"
    client.close()
    return handler.count


def openai_async(chunks: list[bytes]) -> int:
    import openai

    _, counting = _openai_handlers()
    handler = counting()

    async def go() -> None:
        client = openai.AsyncOpenAI(api_key="sk-bench", base_url="http://bench.invalid/v1", max_retries=0,
                                    http_client=httpx.AsyncClient(transport=_transport(chunks)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            async with client.beta.threads.runs.stream(thread_id="thread_1", assistant_id="asst_1",
                                                       event_handler=handler) as stream:
                await stream.until_done()
        await client.close()

    asyncio.run(go())
    assert handler.current_run and handler.current_run.status == "completed"
    return handler.count


def floor(chunks: list[bytes]) -> int:
    """SSE framing + ``json.loads`` per event and nothing else: no state, no validation."""
    loads, buf, count = json.loads, b"", 0
    for chunk in chunks:
        buf += chunk
        *blocks, buf = buf.split(b"\n\n")
        for block in blocks:
            data = block.partition(b"\ndata: ")[2]
            if data != b"[DONE]":
                loads(data)
            count += 1
    return count


def have_openai() -> bool:
    try:
        from openai import AssistantEventHandler  # noqa: F401
    except ImportError:
        return False
    return True


def _check(fn: Callable[[list[bytes]], int], chunks: list[bytes], expected: int, name: str) -> None:
    got = fn(chunks)
    if got != expected:
        raise AssertionError(f"{name} saw {got} deltas, expected {expected}")


def run(quick: bool = False) -> list[Row]:
    total = 2_000 if quick else 200_000
    # openai-python folds ~5k events/s, so it reads a 50,000-event stream of the same make-up
    # (its rate is the same at 200,000: 5.2k/s sync measured; BENCH_OPENAI_EVENTS=200000 to check).
    base_total = 2_000 if quick else int(os.environ.get("BENCH_OPENAI_EVENTS", 50_000))
    events = stream_events(total)
    chunks = sse_chunks(events)
    n = len(events)
    deltas = sum(e.event.endswith(".delta") for e in events)
    for name, fn in (("ours async", ours_async), ("ours sync", ours_sync)):  # warm up + same work
        _check(fn, chunks, deltas, name)
    if floor(chunks) != n:
        raise AssertionError("floor decoder miscounted")
    repeat = 2 if quick else 3
    # CPU time, interleaved, the same repeats for every side (the sync path's portal thread is
    # this process's CPU too, so it is counted).
    best = interleaved({"floor": lambda: floor(chunks), "ours async": lambda: ours_async(chunks),
                        "ours sync": lambda: ours_sync(chunks)}, repeat, clock=time.process_time)
    rate = {k: n / v / 1000 for k, v in best.items()}  # thousands of events per second
    mb = sum(map(len, chunks)) / 1e6
    label = f"events: {n:,} ({mb:.0f} MB SSE)"
    rows = []
    if have_openai():
        # Against openai-python both sides read the same (shorter) stream, in turns, as often
        # each: timing openai once against our best of N overstated our ratio by 16-37%.
        base_events = stream_events(base_total)
        base_chunks = sse_chunks(base_events)
        base_n = len(base_events)
        base_deltas = sum(e.event.endswith(".delta") for e in base_events)
        _check(openai_async, base_chunks, base_deltas, "openai async")
        _check(openai_sync, base_chunks, base_deltas, "openai sync")
        versus = interleaved({"openai async": lambda: openai_async(base_chunks),
                              "openai sync": lambda: openai_sync(base_chunks),
                              "ours async": lambda: ours_async(base_chunks),
                              "ours sync": lambda: ours_sync(base_chunks)},
                             1 if quick else 2, clock=time.process_time)
        same = {k: base_n / v / 1000 for k, v in versus.items()}
        name = f"openai-python, same {base_n:,} ev"
        small = f"events: {base_n:,}"
        rows += [
            Row(f"{small}, async RunStream (CPU, interleaved)", same["ours async"], same["openai async"],
                "k ev/s", ">= 3x", same["ours async"] >= 3 * same["openai async"], name),
            Row(f"{small}, sync until_done (CPU, interleaved)", same["ours sync"], same["openai sync"],
                "k ev/s", ">= 3x", same["ours sync"] >= 3 * same["openai sync"], name),
        ]
    rows += [
        Row(f"{label}, async RunStream vs floor", rate["ours async"], rate["floor"], "k ev/s",
            ">= 0.67x", rate["ours async"] >= rate["floor"] / 1.5, "SSE split+json.loads"),
        Row(f"{label}, sync until_done vs floor", rate["ours sync"], rate["floor"], "k ev/s",
            ">= 0.67x", rate["ours sync"] >= rate["floor"] / 1.5, "SSE split+json.loads"),
    ]
    return rows


if __name__ == "__main__":
    main(run, __doc__)
