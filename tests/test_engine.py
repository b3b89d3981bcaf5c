"""The embedded engine's run state machine, through LocalBackend (and the engine where clearer).

Models are scripted (``scripted:PATH.json`` written to tmp_path); the event order is checked
against the spec's example streams.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_runs import _portal
from jupyter_runs.backends.local.backend import LocalBackend
from jupyter_runs.backends.local.engine import Engine
from jupyter_runs.backends.local.runloop import Segment
from jupyter_runs.backends.local.store import Store
from jupyter_runs.errors import BadRequestError, NotFoundError
from jupyter_runs.events import RunState, fold, message_text
from jupyter_runs.wire import TERMINAL_STATUSES, Event

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "examples" / "spec"  # verbatim copies
TOOL = {"type": "function", "function": {"name": "load_sales", "description": "Sales rows.",
                                         "parameters": {"type": "object", "properties": {}}}}
OTHER = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}


def script(tmp_path: Path, turns: list[dict[str, Any]], delay: float = 0.0, name: str = "s.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"delay": delay, "turns": turns}))
    return f"scripted:{path}"


def example_events(name: str) -> list[str]:
    path = EXAMPLES / name
    if not path.exists():
        pytest.fail(f"spec example stream missing: {path} (tests/fixtures/examples/spec)")
    return [line[len("event: "):].strip() for line in path.read_text().splitlines()
            if line.startswith("event: ")]


def collapse(names: list[str]) -> list[str]:
    """Runs of the same delta event become one (the examples elide deltas with '...')."""
    out: list[str] = []
    for name in names:
        if not (out and name == out[-1] and name.endswith(".delta")):
            out.append(name)
    return out


@pytest.fixture
async def backend() -> AsyncIterator[LocalBackend]:
    b = LocalBackend(":memory:")
    yield b
    await b.aclose()


async def setup(backend: LocalBackend, model: str, text: str = "hi", **asst: Any) -> tuple[str, str]:
    a = await backend.call("create_assistant", body={"model": model, **asst})
    t = await backend.call("create_thread", body={"messages": [{"role": "user", "content": text}]})
    return a["id"], t["id"]


async def collect(stream: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in stream]


async def run_stream(backend: LocalBackend, thread_id: str, **body: Any) -> list[Event]:
    return await collect(backend.stream("create_run", {"thread_id": thread_id}, body=body))


async def wait_status(backend: LocalBackend, thread_id: str, run_id: str,
                      statuses: frozenset[str] | set[str] = TERMINAL_STATUSES) -> dict[str, Any]:
    for _ in range(1000):
        run = await backend.call("retrieve_run", {"thread_id": thread_id, "run_id": run_id})
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} stuck in {run['status']}")


async def messages(backend: LocalBackend, thread_id: str) -> list[dict[str, Any]]:
    page = await backend.call("list_messages", {"thread_id": thread_id}, query={"order": "asc"})
    return page["data"]


def requests_of(backend: LocalBackend, model: str) -> list[Any]:
    return list(backend.engine.model(model).requests)


# -- streams and their order ----------------------------------------------------------------


async def test_streamed_reply_follows_spec_event_order(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "Hello! How can I assist you today?"}])
    asst, thread = await setup(backend, model)
    events = await run_stream(backend, thread, assistant_id=asst)
    assert collapse([e.event for e in events]) == collapse(example_events("createRun.streaming.sse"))
    state = RunState()
    for e in events:
        fold(state, e.event, e.data)
    (msg,) = state.messages.values()
    assert message_text(msg) == "Hello! How can I assist you today?"
    deltas = [e for e in events if e.event == "thread.message.delta"]
    assert len(deltas) == 7  # word-sized
    assert events[-1].data == "[DONE]" and state.run["status"] == "completed"
    assert state.run["usage"]["total_tokens"] > 0
    (step,) = state.steps.values()
    assert step["usage"]["completion_tokens"] == 7
    stored = await messages(backend, thread)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"][0]["text"]["value"] == "Hello! How can I assist you today?"


async def test_create_thread_and_run_starts_with_thread_created(
    backend: LocalBackend, tmp_path: Path
) -> None:
    a = await backend.call("create_assistant", body={"model": script(tmp_path, [{"text": "Hi."}])})
    events = await collect(backend.stream("create_thread_and_run", body={
        "assistant_id": a["id"], "thread": {"messages": [{"role": "user", "content": "hello"}]}}))
    expected = example_events("createThreadAndRun.streaming.sse")
    assert collapse([e.event for e in events]) == collapse(expected)
    thread_id = events[0].data["id"]
    assert events[1].data["thread_id"] == thread_id
    assert [m["role"] for m in await messages(backend, thread_id)] == ["user", "assistant"]


async def test_tool_round_trip_matches_spec_streams(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [
        {"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}}]},
        {"text": "North grew fastest."},
    ])
    a = await backend.call("create_assistant", body={"model": model, "tools": [TOOL]})
    first = await collect(backend.stream("create_thread_and_run", body={
        "assistant_id": a["id"], "thread": {"messages": [{"role": "user", "content": "which?"}]}}))
    assert collapse([e.event for e in first]) == collapse(
        example_events("createThreadAndRun.streaming-with-functions.sse"))
    run = first[-2].data
    assert run["status"] == "requires_action" and run["usage"]["total_tokens"] > 0
    (call,) = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert call["function"] == {"name": "load_sales", "arguments": '{"region": "north"}'}
    step_deltas = [e.data["delta"]["step_details"]["tool_calls"][0] for e in first
                   if e.event == "thread.run.step.delta"]
    assert step_deltas[0]["id"] == call["id"] and step_deltas[0]["function"]["name"] == "load_sales"
    assert "".join(d["function"]["arguments"] for d in step_deltas) == call["function"]["arguments"]
    assert len(step_deltas) > 2  # arguments arrive in pieces

    params = {"thread_id": run["thread_id"], "run_id": run["id"]}
    second = await collect(backend.stream("submit_tool_outputs", params, body={
        "tool_outputs": [{"tool_call_id": call["id"], "output": "north +12%"}]}))
    assert collapse([e.event for e in second]) == collapse(
        example_events("submitToolOutputs.streaming.sse"))
    done_step = second[0].data
    assert done_step["step_details"]["tool_calls"][0]["function"]["output"] == "north +12%"
    assert second[-2].data["status"] == "completed"
    steps = await backend.call("list_run_steps", params, query={"order": "asc"})
    assert [s["type"] for s in steps["data"]] == ["tool_calls", "message_creation"]
    assert all(s["status"] == "completed" and s["usage"] for s in steps["data"])
    sent = requests_of(backend, model)[-1].messages
    assert sent[-2]["tool_calls"][0]["id"] == call["id"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call["id"], "content": "north +12%"}


async def test_text_then_tool_call_in_one_turn(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [
        {"text": "Let me check.", "tool_calls": [{"name": "load_sales", "arguments": {}}]},
        {"text": "Checked."},
    ])
    asst, thread = await setup(backend, model, tools=[TOOL])
    events = await run_stream(backend, thread, assistant_id=asst)
    names = collapse([e.event for e in events])
    assert names[3:] == [
        "thread.run.step.created", "thread.run.step.in_progress", "thread.message.created",
        "thread.message.in_progress", "thread.message.delta", "thread.message.completed",
        "thread.run.step.completed", "thread.run.step.created", "thread.run.step.in_progress",
        "thread.run.step.delta", "thread.run.requires_action", "done"]
    run = events[-2].data
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    await collect(backend.stream("submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
                                 body={"tool_outputs": [{"tool_call_id": call["id"], "output": "7"}]}))
    sent = requests_of(backend, model)[1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "assistant", "tool"]
    assert sent[1] == {"role": "assistant", "content": "Let me check."}
    texts = [m["content"][0]["text"]["value"] for m in await messages(backend, thread)]
    assert texts == ["hi", "Let me check.", "Checked."]


async def test_parallel_tool_calls_arrive_together(backend: LocalBackend, tmp_path: Path) -> None:
    calls = [{"name": "load_sales", "arguments": {"region": r}} for r in ("north", "south", "east")]
    model = script(tmp_path, [{"tool_calls": calls}, {"text": "done"}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    events = await run_stream(backend, thread, assistant_id=asst)
    run = events[-2].data
    required = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"])["region"] for c in required] == [
        "north", "south", "east"]
    assert len({c["id"] for c in required}) == 3
    assert requests_of(backend, model)[0].parallel_tool_calls is True
    params = {"thread_id": thread, "run_id": run["id"]}
    partial = [{"tool_call_id": required[0]["id"], "output": "1"}]
    with pytest.raises(BadRequestError, match="Expected tool outputs"):
        await backend.call("submit_tool_outputs", params, body={"tool_outputs": partial})
    outputs = [{"tool_call_id": c["id"], "output": str(i)} for i, c in enumerate(required)]
    await backend.call("submit_tool_outputs", params, body={"tool_outputs": outputs})
    done = await wait_status(backend, thread, run["id"])
    assert done["status"] == "completed"
    tool_msgs = [m for m in requests_of(backend, model)[-1].messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_msgs] == ["0", "1", "2"]


async def test_parallel_tool_calls_false_asks_for_one_call(
    backend: LocalBackend, tmp_path: Path
) -> None:
    calls = [{"name": "load_sales", "arguments": {"region": r}} for r in ("north", "south")]
    model = script(tmp_path, [{"tool_calls": calls}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    events = await run_stream(backend, thread, assistant_id=asst, parallel_tool_calls=False)
    assert requests_of(backend, model)[0].parallel_tool_calls is False
    assert len(events[-2].data["required_action"]["submit_tool_outputs"]["tool_calls"]) == 1
    assert events[-2].data["parallel_tool_calls"] is False


# -- cancel, polling, consumers -------------------------------------------------------------


async def test_cancel_keeps_partial_reply(backend: LocalBackend, tmp_path: Path) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    model = script(tmp_path, [{"text": text}], delay=0.01)
    asst, thread = await setup(backend, model)
    events: list[Event] = []
    deltas = 0
    async for event in backend.stream("create_run", {"thread_id": thread}, body={"assistant_id": asst}):
        events.append(event)
        deltas += event.event == "thread.message.delta"
        if deltas == 3 and event.event == "thread.message.delta":
            run_id = events[0].data["id"]
            answer = await backend.call("cancel_run", {"thread_id": thread, "run_id": run_id})
            assert answer["status"] == "cancelling"
    names = [e.event for e in events]
    assert "thread.message.delta" not in names[names.index("thread.run.cancelling"):]
    tail = [n for n in names if n != "thread.message.delta"][-5:]
    assert tail == ["thread.run.cancelling", "thread.message.incomplete",
                    "thread.run.step.cancelled", "thread.run.cancelled", "done"]
    run = await backend.call("retrieve_run", {"thread_id": thread, "run_id": events[0].data["id"]})
    assert run["status"] == "cancelled" and run["cancelled_at"]
    reply = (await messages(backend, thread))[-1]
    assert reply["status"] == "incomplete"
    assert reply["incomplete_details"] == {"reason": "run_cancelled"}
    partial = reply["content"][0]["text"]["value"]
    assert text.startswith(partial) and 0 < len(partial) < len(text)
    with pytest.raises(BadRequestError, match="Cannot cancel run with status 'cancelled'"):
        await backend.call("cancel_run", {"thread_id": thread, "run_id": run["id"]})


async def test_cancel_while_waiting_for_tool_outputs(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    await backend.call("cancel_run", {"thread_id": thread, "run_id": run["id"]})
    run = await wait_status(backend, thread, run["id"])
    assert run["status"] == "cancelled" and run["required_action"] is None
    steps = await backend.call("list_run_steps", {"thread_id": thread, "run_id": run["id"]})
    assert [s["status"] for s in steps["data"]] == ["cancelled"]


async def test_polling_sees_the_run_finish(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "one two three"}], delay=0.005)
    asst, thread = await setup(backend, model)
    run = await backend.call("create_run", {"thread_id": thread}, body={"assistant_id": asst})
    assert run["status"] == "queued" and run["object"] == "thread.run"
    seen = {run["status"]}
    for _ in range(1000):
        run = await backend.call("retrieve_run", {"thread_id": thread, "run_id": run["id"]})
        seen.add(run["status"])
        if run["status"] in TERMINAL_STATUSES:
            break
        await asyncio.sleep(backend.poll_interval / 10)
    assert run["status"] == "completed" and "in_progress" in seen
    assert (await messages(backend, thread))[-1]["content"][0]["text"]["value"] == "one two three"


async def test_consumer_leaving_does_not_stop_the_run(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "a b c d e f g h"}], delay=0.01)
    asst, thread = await setup(backend, model)
    stream = backend.stream("create_run", {"thread_id": thread}, body={"assistant_id": asst})
    first = await stream.__anext__()
    await stream.aclose()
    run = await wait_status(backend, thread, first.data["id"])
    assert run["status"] == "completed"
    assert (await messages(backend, thread))[-1]["content"][0]["text"]["value"] == "a b c d e f g h"


async def test_late_subscriber_gets_the_whole_segment(tmp_path: Path) -> None:
    engine = Engine(Store(":memory:"))
    model = script(tmp_path, [{"text": "late but complete"}])
    a = await engine.call("create_assistant", body={"model": model})
    t = await engine.call("create_thread", body={"messages": [{"role": "user", "content": "x"}]})
    active = engine._op_create_run({"thread_id": t["id"]}, {"assistant_id": a["id"]}, {})
    await active.task  # the run finishes before anyone subscribes
    events = [e for batch in [b async for b in active.segment.batches()] for e in batch]
    assert events[0].event == "thread.run.created" and events[-1].event == "done"
    assert "".join(e.data["delta"]["content"][0]["text"]["value"] for e in events
                   if e.event == "thread.message.delta") == "late but complete"
    await engine.aclose()


async def test_segment_waiters_are_independent() -> None:
    segment = Segment()
    first = asyncio.ensure_future(collect_batches(segment))
    second = asyncio.ensure_future(collect_batches(segment))
    await asyncio.sleep(0)
    first.cancel()  # one consumer going away must not disturb the other
    segment.push(Event("thread.run.created", {}))
    segment.push(Event("done", "[DONE]"))
    assert [e.event for e in await second] == ["thread.run.created", "done"]
    assert first.cancelled()


async def collect_batches(segment: Segment) -> list[Event]:
    return [e async for batch in segment.batches() for e in batch]


def test_stream_on_the_portal_loop_goes_direct(tmp_path: Path) -> None:
    backend = LocalBackend(":memory:")
    model = script(tmp_path, [{"text": "sync path"}])
    a = _portal.call(lambda: backend.call("create_assistant", body={"model": model}))
    t = _portal.call(lambda: backend.call("create_thread", body={}))
    events = list(_portal.iterate(lambda: backend.stream(
        "create_thread_and_run", body={"assistant_id": a["id"]})))
    assert events[-1].event == "done" and events[-2].event == "thread.run.completed"
    assert t["object"] == "thread"
    _portal.call(backend.aclose)


async def test_cancel_before_the_run_starts(tmp_path: Path) -> None:
    engine = Engine(Store(":memory:"))
    a = await engine.call("create_assistant", body={"model": script(tmp_path, [{"text": "x"}])})
    t = await engine.call("create_thread", body={})
    active = engine._op_create_run({"thread_id": t["id"]}, {"assistant_id": a["id"]}, {})
    run = await engine.call("cancel_run", {"thread_id": t["id"], "run_id": active.id})
    assert run["status"] == "cancelled"  # its task never ran: nothing to wait for
    events = [e.event async for batch in active.segment.batches() for e in batch]
    assert events == ["thread.run.created", "thread.run.queued", "thread.run.cancelling",
                      "thread.run.cancelled", "done"]
    await asyncio.sleep(0)
    assert active.task is not None and active.task.cancelled()
    assert engine.model(a["model"]).requests == deque()
    await engine.aclose()


async def test_fifty_concurrent_streams_all_complete(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "reply number one two three"}], delay=0.001)
    a = await backend.call("create_assistant", body={"model": model})

    async def one(i: int) -> str:
        events = await collect(backend.stream("create_thread_and_run", body={
            "assistant_id": a["id"], "thread": {"messages": [{"role": "user", "content": str(i)}]}}))
        assert events[-2].data["status"] == "completed"
        (reply,) = [e.data for e in events if e.event == "thread.message.completed"]
        return reply["content"][0]["text"]["value"]

    replies = await asyncio.gather(*(one(i) for i in range(50)))
    assert replies == ["reply number one two three"] * 50


# -- limits and options ---------------------------------------------------------------------


async def test_max_completion_tokens_ends_incomplete(backend: LocalBackend, tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(300)]
    model = script(tmp_path, [{"text": " ".join(words)}])
    asst, thread = await setup(backend, model)
    events = await run_stream(backend, thread, assistant_id=asst, max_completion_tokens=256)
    names = [e.event for e in events]
    assert names[-4:] == ["thread.message.incomplete", "thread.run.step.completed",
                          "thread.run.incomplete", "done"]
    run = events[-2].data
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert run["usage"]["completion_tokens"] == 256
    assert requests_of(backend, model)[0].max_tokens == 256
    reply = (await messages(backend, thread))[-1]
    assert reply["status"] == "incomplete" and reply["incomplete_details"] == {"reason": "max_tokens"}
    assert reply["content"][0]["text"]["value"] == " ".join(words[:256]) + " "


async def test_token_budgets_below_the_spec_minimum_are_refused(
    backend: LocalBackend, tmp_path: Path
) -> None:
    asst, thread = await setup(backend, script(tmp_path, [{"text": "x"}]))
    for key in ("max_completion_tokens", "max_prompt_tokens"):
        with pytest.raises(BadRequestError, match=f"Invalid '{key}': must be at least 256"):
            await backend.call("create_run", {"thread_id": thread},
                               body={"assistant_id": asst, key: 10})


async def test_script_finish_length_ends_incomplete(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "cut here", "finish_reason": "length"}])
    asst, thread = await setup(backend, model)
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    assert run["status"] == "incomplete"
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}


async def test_max_prompt_tokens_ends_incomplete(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "never"}])
    asst, thread = await setup(backend, model, text="many words " * 200)
    run = (await run_stream(backend, thread, assistant_id=asst, max_prompt_tokens=256))[-2].data
    assert run["status"] == "incomplete"
    assert run["incomplete_details"] == {"reason": "max_prompt_tokens"}
    assert requests_of(backend, model) == []


async def test_auto_truncation_drops_oldest_messages(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "ok"}])
    asst, thread = await setup(backend, model, text="old " * 300)
    await backend.call("create_message", {"thread_id": thread},
                       body={"role": "user", "content": "newest question"})
    run = (await run_stream(backend, thread, assistant_id=asst, max_prompt_tokens=256))[-2].data
    assert run["status"] == "completed"
    assert requests_of(backend, model)[0].messages == [{"role": "user", "content": "newest question"}]


async def test_last_messages_truncation(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "ok"}])
    asst, thread = await setup(backend, model, text="first")
    for text in ("second", "third"):
        await backend.call("create_message", {"thread_id": thread},
                           body={"role": "user", "content": text})
    await run_stream(backend, thread, assistant_id=asst, instructions="sys",
                     truncation_strategy={"type": "last_messages", "last_messages": 2})
    assert requests_of(backend, model)[0].messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "second"},
        {"role": "user", "content": "third"},
    ]


@pytest.mark.parametrize("choice, sent", [
    ("none", "none"),
    ("auto", "auto"),
    ("required", "required"),
    ({"type": "function", "function": {"name": "load_sales"}},
     {"type": "function", "function": {"name": "load_sales"}}),
])
async def test_tool_choice_reaches_the_model(
    backend: LocalBackend, tmp_path: Path, choice: Any, sent: Any
) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]},
                              {"text": "after"}])
    asst, thread = await setup(backend, model, tools=[TOOL, OTHER])
    run = (await run_stream(backend, thread, assistant_id=asst, tool_choice=choice))[-2].data
    first = requests_of(backend, model)[0]
    assert first.tool_choice == sent
    assert [t["function"]["name"] for t in first.tools] == ["load_sales", "other"]
    assert run["tool_choice"] == choice
    if choice == "none":
        assert run["status"] == "completed"  # no tool call was made
        return
    assert run["status"] == "requires_action"
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    await backend.call("submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
                       body={"tool_outputs": [{"tool_call_id": call["id"], "output": "x"}]})
    assert (await wait_status(backend, thread, run["id"]))["status"] == "completed"
    # Forcing a tool again after its output would loop: later calls are "auto".
    assert requests_of(backend, model)[1].tool_choice == "auto"


async def test_bad_tool_choice_is_refused(backend: LocalBackend, tmp_path: Path) -> None:
    asst, thread = await setup(backend, script(tmp_path, [{"text": "x"}]), tools=[TOOL])
    bad = {"type": "function", "function": {"name": "missing"}}
    with pytest.raises(BadRequestError, match="no function tool named 'missing'"):
        await backend.call("create_run", {"thread_id": thread},
                           body={"assistant_id": asst, "tool_choice": bad})
    with pytest.raises(BadRequestError, match="'required' needs at least one function tool"):
        await backend.call("create_run", {"thread_id": thread},
                           body={"assistant_id": asst, "tool_choice": "required", "tools": []})


async def test_run_options_reach_the_model(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": "ok"}])
    asst, thread = await setup(backend, model, instructions="Be brief.", temperature=0.5)
    fmt = {"type": "json_object"}
    run = (await run_stream(
        backend, thread, assistant_id=asst, additional_instructions="Use metric units.",
        additional_messages=[{"role": "user", "content": "and one more"}], top_p=0.9,
        response_format=fmt, metadata={"k": "v"}))[-2].data
    request = requests_of(backend, model)[0]
    assert request.messages == [
        {"role": "system", "content": "Be brief.\n\nUse metric units."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "and one more"},
    ]
    assert (request.temperature, request.top_p, request.response_format) == (0.5, 0.9, fmt)
    assert request.model == str(tmp_path / "s.json")
    assert run["metadata"] == {"k": "v"} and run["temperature"] == 0.5
    assert [m["role"] for m in await messages(backend, thread)] == ["user", "user", "assistant"]


async def test_thread_history_across_three_runs_includes_tool_calls(
    backend: LocalBackend, tmp_path: Path
) -> None:
    first = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {"r": "n"}}]},
                              {"text": "North."}], name="one.json")
    second = script(tmp_path, [{"text": "South is second."}], name="two.json")
    third = script(tmp_path, [{"text": "Done."}], name="three.json")
    asst, thread = await setup(backend, first, text="Q1", tools=[TOOL])
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    await collect(backend.stream("submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
                                 body={"tool_outputs": [{"tool_call_id": call["id"], "output": "12"}]}))
    for model, question in ((second, "Q2"), (third, "Q3")):
        await backend.call("create_message", {"thread_id": thread},
                           body={"role": "user", "content": question})
        events = await run_stream(backend, thread, assistant_id=asst, model=model)
        assert events[-2].data["status"] == "completed"
    sent = requests_of(backend, third)[0].messages
    assert sent == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": "load_sales", "arguments": '{"r": "n"}'}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "12"},
        {"role": "assistant", "content": "North."},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "South is second."},
        {"role": "user", "content": "Q3"},
    ]


# -- failures -------------------------------------------------------------------------------


async def test_invalid_script_fails_the_run_naming_the_file(
    backend: LocalBackend, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    asst, thread = await setup(backend, f"scripted:{broken}")
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    assert run["status"] == "failed" and run["failed_at"]
    assert run["last_error"]["code"] == "invalid_prompt"
    assert str(broken) in run["last_error"]["message"]
    assert "not valid JSON" in run["last_error"]["message"]
    missing = tmp_path / "missing.json"
    run = (await run_stream(backend, thread, assistant_id=asst, model=f"scripted:{missing}"))[-2].data
    assert run["status"] == "failed" and str(missing) in run["last_error"]["message"]
    bad_turn = script(tmp_path, [{"nothing": 1}], name="bad.json")
    run = (await run_stream(backend, thread, assistant_id=asst, model=bad_turn))[-2].data
    assert "turn 1" in run["last_error"]["message"]


@pytest.mark.parametrize("code", ["server_error", "rate_limit_exceeded", "invalid_prompt"])
async def test_model_error_fails_the_run_with_its_code(
    backend: LocalBackend, tmp_path: Path, code: str
) -> None:
    model = script(tmp_path, [{"error": {"code": code, "message": f"scripted {code}"}}])
    asst, thread = await setup(backend, model)
    events = await run_stream(backend, thread, assistant_id=asst)
    assert [e.event for e in events][-2:] == ["thread.run.failed", "done"]
    assert events[-2].data["last_error"] == {"code": code, "message": f"scripted {code}"}


async def test_error_mid_reply_keeps_what_was_written(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]},
                              {"error": {"code": "server_error", "message": "boom"}}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    events = await collect(backend.stream(
        "submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
        body={"tool_outputs": [{"tool_call_id": call["id"], "output": "x"}]}))
    assert events[-2].data["status"] == "failed"
    steps = await backend.call("list_run_steps", {"thread_id": thread, "run_id": run["id"]})
    assert [s["status"] for s in steps["data"]] == ["completed"]


async def test_script_out_of_turns_fails_clearly(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    events = await collect(backend.stream(
        "submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
        body={"tool_outputs": [{"tool_call_id": call["id"], "output": "x"}]}))
    error = events[-2].data["last_error"]
    assert "has 1 turn(s)" in error["message"] and "turn 2" in error["message"]


async def test_run_waiting_for_tools_expires(tmp_path: Path) -> None:
    backend = LocalBackend(":memory:", expires_after=0.2)
    try:
        model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]}])
        asst, thread = await setup(backend, model, tools=[TOOL])
        run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
        run = await wait_status(backend, thread, run["id"])
        assert run["status"] == "expired" and run["required_action"] is None
        steps = await backend.call("list_run_steps", {"thread_id": thread, "run_id": run["id"]})
        assert steps["data"][0]["status"] == "expired" and steps["data"][0]["expired_at"]
        with pytest.raises(BadRequestError, match='status "expired" do not accept tool outputs'):
            await backend.call("submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
                               body={"tool_outputs": []})
    finally:
        await backend.aclose()


async def test_second_active_run_is_refused(backend: LocalBackend, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "load_sales", "arguments": {}}]}])
    asst, thread = await setup(backend, model, tools=[TOOL])
    run = await backend.call("create_run", {"thread_id": thread}, body={"assistant_id": asst})
    with pytest.raises(BadRequestError) as info:
        await backend.call("create_run", {"thread_id": thread}, body={"assistant_id": asst})
    assert info.value.message == f"thread {thread} already has an active run {run['id']}"
    assert info.value.to_body()["error"]["type"] == "invalid_request_error"
    with pytest.raises(BadRequestError, match="while a run"):
        await backend.call("create_message", {"thread_id": thread},
                           body={"role": "user", "content": "more"})


async def test_unknown_ids_give_the_api_messages(backend: LocalBackend) -> None:
    with pytest.raises(NotFoundError) as info:
        await backend.call("retrieve_thread", {"thread_id": "thread_nope"})
    assert info.value.to_body()["error"]["message"] == "No thread found with id 'thread_nope'."
    assert info.value.status == 404
    with pytest.raises(NotFoundError, match="No assistant found with id 'asst_x'."):
        await backend.call("create_thread_and_run", body={"assistant_id": "asst_x"})
    t = await backend.call("create_thread", body={})
    with pytest.raises(NotFoundError, match="No run found with id 'run_x'."):
        await backend.call("retrieve_run", {"thread_id": t["id"], "run_id": "run_x"})
    with pytest.raises(NotFoundError, match="No message found with id 'msg_x'."):
        await backend.call("retrieve_message", {"thread_id": t["id"], "message_id": "msg_x"})
    with pytest.raises(BadRequestError, match="Missing required parameter: 'model'"):
        await backend.call("create_assistant", body={})
    with pytest.raises(NotFoundError, match="No thread found with id 'thread_nope'."):
        await collect(backend.stream("create_run", {"thread_id": "thread_nope"},
                                     body={"assistant_id": "asst_x"}))


async def test_engine_close_marks_running_runs_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    backend = LocalBackend(path)
    model = script(tmp_path, [{"text": "slow " * 50}], delay=0.05)
    asst, thread = await setup(backend, model)
    stream = backend.stream("create_run", {"thread_id": thread}, body={"assistant_id": asst})
    run_id = (await stream.__anext__()).data["id"]
    await stream.aclose()
    await backend.aclose()
    store = Store(path)
    run = store.get_run(thread, run_id)
    assert run["status"] == "failed" and "interrupted" in run["last_error"]["message"]
    store.close()


async def test_responses_are_copies(backend: LocalBackend, tmp_path: Path) -> None:
    a = await backend.call("create_assistant", body={"model": "scripted:x.json", "metadata": {"a": "1"}})
    a["metadata"]["a"] = "changed"
    again = await backend.call("retrieve_assistant", {"assistant_id": a["id"]})
    assert again["metadata"] == {"a": "1"}


# -- the spec's schemas ---------------------------------------------------------------------


async def test_every_event_and_object_fits_the_spec(tmp_path: Path) -> None:
    from tests.openapi_spec import validate, validate_event

    backend = LocalBackend(":memory:", expires_after=0.2)
    try:
        model = script(tmp_path, [
            {"text": "Let me look."},
            {"tool_calls": [{"name": "load_sales", "arguments": {"r": "n"}},
                            {"name": "other", "arguments": "{}"}]},
        ])
        asst, thread = await setup(backend, model, tools=[TOOL, OTHER])
        events: list[Event] = []
        # text, then tool calls, then outputs -> script out of turns -> failed
        events += await run_stream(backend, thread, assistant_id=asst,
                                   tool_choice="required", metadata={"a": "b"})
        assert events[-2].data["status"] == "completed"  # turn 1 is text only
        events += await run_stream(backend, thread, assistant_id=asst,
                                   model=script(tmp_path, [{"tool_calls": [
                                       {"name": "load_sales", "arguments": {}}]}], name="t.json"))
        run = events[-2].data
        call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
        events += await collect(backend.stream(
            "submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
            body={"tool_outputs": [{"tool_call_id": call["id"], "output": "x"}]}))
        assert events[-2].data["status"] == "failed"
        long = script(tmp_path, [{"text": "word " * 300}], name="long.json")
        events += await run_stream(backend, thread, assistant_id=asst, model=long,
                                   max_completion_tokens=256)
        assert events[-2].data["status"] == "incomplete"
        slow = script(tmp_path, [{"text": "a b c d e f g h i j"}], delay=0.02, name="slow.json")
        cancelled: list[Event] = []
        async for event in backend.stream("create_run", {"thread_id": thread},
                                          body={"assistant_id": asst, "model": slow}):
            cancelled.append(event)
            if event.event == "thread.message.delta" and len(cancelled) < 12:
                await backend.call("cancel_run",
                                   {"thread_id": thread, "run_id": cancelled[0].data["id"]})
        events += cancelled
        assert cancelled[-2].data["status"] == "cancelled"
        a = await backend.call("create_assistant", body={"model": model})
        events += await collect(backend.stream("create_thread_and_run", body={
            "assistant_id": a["id"], "thread": {"messages": [{"role": "user", "content": "q"}]}}))
        seen: dict[tuple[str, str], int] = {}
        for event in events:
            if event.event.endswith(".delta"):  # a long reply's deltas all look alike
                key = (event.event, event.data["id"])
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > 5:
                    continue
            validate_event(event.event, event.data)
        assert {"thread.created", "thread.run.step.delta", "thread.run.requires_action",
                "thread.run.failed", "thread.run.incomplete", "thread.message.incomplete",
                "thread.run.cancelled", "thread.run.step.cancelled"} <= {e.event for e in events}

        validate("AssistantObject", await backend.call("retrieve_assistant", {"assistant_id": asst}))
        validate("ThreadObject", await backend.call("retrieve_thread", {"thread_id": thread}))
        validate("ListAssistantsResponse", await backend.call("list_assistants"))
        validate("ListMessagesResponse",
                 await backend.call("list_messages", {"thread_id": thread}, query={"limit": 100}))
        runs = await backend.call("list_runs", {"thread_id": thread}, query={"limit": 100})
        validate("ListRunsResponse", runs)
        for run in runs["data"]:
            steps = await backend.call("list_run_steps", {"thread_id": thread, "run_id": run["id"]})
            validate("ListRunStepsResponse", steps)
        waiting = script(tmp_path, [{"tool_calls": [{"name": "other", "arguments": {}}]}],
                         name="wait.json")
        run = (await run_stream(backend, thread, assistant_id=asst, model=waiting))[-2].data
        expired = await wait_status(backend, thread, run["id"])
        assert expired["status"] == "expired"
        validate("RunObject", expired)
        validate("ListRunStepsResponse", await backend.call(
            "list_run_steps", {"thread_id": thread, "run_id": run["id"]}))
        deleted = await backend.call("delete_assistant", {"assistant_id": a["id"]})
        validate("DeleteAssistantResponse", deleted)
    finally:
        await backend.aclose()


# -- over a Chat Completions server ---------------------------------------------------------


async def test_engine_over_a_chat_completions_server(chat_server: Any) -> None:
    from tests.fakes.chat_server import error_reply, text_reply, tool_calls_reply

    calls = [("call_a", "load_sales", '{"region": "north"}'),
             ("call_b", "load_sales", '{"region": "south"}')]
    chat_server.add(tool_calls_reply(calls, index_zero=True), text_reply("Both", " grew."),
                    error_reply(400, "bad prompt", type="invalid_request_error"))
    backend = LocalBackend(":memory:", model_config={"base_url": chat_server.base_url,
                                                     "max_retries": 0})
    try:
        asst, thread = await setup(backend, "compat:fake-model", tools=[TOOL])
        run = (await run_stream(backend, thread, assistant_id=asst))[-2].data
        required = run["required_action"]["submit_tool_outputs"]["tool_calls"]
        assert [(c["id"], c["function"]["arguments"]) for c in required] == [
            ("call_a", '{"region": "north"}'), ("call_b", '{"region": "south"}')]
        assert run["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        outputs = [{"tool_call_id": c["id"], "output": c["id"][-1]} for c in required]
        events = await collect(backend.stream(
            "submit_tool_outputs", {"thread_id": thread, "run_id": run["id"]},
            body={"tool_outputs": outputs}))
        assert events[-2].data["status"] == "completed"
        assert events[-2].data["usage"]["total_tokens"] == 16 + 10
        sent = chat_server.requests[1].body
        assert sent["model"] == "fake-model" and sent["stream"] is True
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
        assert [m["content"] for m in sent["messages"][2:]] == ["a", "b"]
        failed = (await run_stream(backend, thread, assistant_id=asst))[-2].data
        assert failed["status"] == "failed" and failed["last_error"]["code"] == "invalid_prompt"
        assert "bad prompt" in failed["last_error"]["message"]
    finally:
        await backend.aclose()


async def test_a_closed_backend_says_so() -> None:
    from jupyter_runs.errors import APIConnectionError

    backend = LocalBackend(":memory:")
    await backend.aclose()
    await backend.aclose()  # twice is fine
    with pytest.raises(APIConnectionError, match="closed"):
        await backend.call("list_assistants")
