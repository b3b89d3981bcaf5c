"""Client, Run and RunStream over real loopback HTTP against the scripted replay server."""

from __future__ import annotations

import asyncio
import json

import pytest

import jupyter_runs as jr
from jupyter_runs.errors import RunError
from tests.fakes.assistants_replay import WaitFor, fixture_stream

KEY = "sk-client-test-key"


@pytest.fixture
async def aclient(replay):
    client = jr.AsyncClient(base_url=replay.url, api_key=KEY, max_retries=0)
    yield client
    await client.aclose()
    assert replay.errors == []


@pytest.fixture
def client(replay):
    client = jr.Client(base_url=replay.url, api_key=KEY, max_retries=0)
    yield client
    client.close()
    assert replay.errors == []


def run_obj(status: str, *, run_id: str = "run_1", thread_id: str = "thread_1", **extra) -> dict:
    return {"id": run_id, "object": "thread.run", "thread_id": thread_id, "assistant_id": "asst_1",
            "status": status, "tools": TOOLS, **extra}


def function_call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def requires_action(*calls: dict, run_id: str = "run_1") -> dict:
    return run_obj("requires_action", run_id=run_id, required_action={
        "type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": list(calls)}})


def text_delta(msg_id: str, text: str) -> tuple[str, dict]:
    return ("thread.message.delta", {"id": msg_id, "object": "thread.message.delta",
                                     "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]}})


TOOLS = [
    {"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
]
DONE = ("done", "[DONE]")


def get_current_weather(location: str, unit: str = "celsius") -> str:
    return f"70 degrees and sunny in {location} ({unit})"


def add(a: int, b: int) -> dict:
    return {"sum": a + b}


ENV = {"get_current_weather": get_current_weather, "add": add}


# -- streams -------------------------------------------------------------------------------------


async def test_streamed_reply_reaches_callbacks_and_event_data(replay, aclient):
    replay.stream(fixture_stream("createRun.streaming"), match="POST /threads/thread_123/runs")
    stream = await aclient.runs.create("thread_123", assistant_id="asst_123", stream=True)
    assert replay.requests == []  # lazy: nothing sent until consumed
    deltas, messages, events = [], [], []
    run = await stream.stream_async(on_message_delta=deltas.append, on_message=messages.append,
                                    on_event=events.append, env={})
    assert run.status == "completed" and run.id == "run_123"
    assert "".join(d.delta.content[0].text.value for d in deltas) == "Hello today?"
    assert messages[-1].status == "completed"
    assert stream.event_data["messages"][0].text == "Hello! How can I assist you today?"
    assert events[-1].event == "done"
    (req,) = replay.requests
    assert req.json == {"assistant_id": "asst_123", "stream": True}
    assert req.headers["authorization"] == f"Bearer {KEY}" and req.headers["accept"] == "text/event-stream"


def test_sync_client_streams_until_done(replay, client):
    replay.stream(fixture_stream("createThreadAndRun.streaming"), match="POST /threads/runs")
    stream = client.threads.create_and_run(assistant_id="asst_123", thread={"messages": []}, stream=True)
    text = []
    run = stream.until_done(on_message_delta=lambda d: text.append(d.delta.content[0].text.value), env={})
    assert run.status == "completed"
    assert "".join(text) == "Hello today?"
    assert stream.event_data["thread"].id == "thread_123"
    assert replay.requests[0].json == {"assistant_id": "asst_123", "thread": {"messages": []}, "stream": True}


async def test_function_call_submits_outputs_and_streams_the_continuation(replay, aclient):
    replay.stream(fixture_stream("createThreadAndRun.streaming-with-functions"))
    replay.stream(fixture_stream("submitToolOutputs.streaming"),
                  match="POST /threads/thread_123/runs/run_123/submit_tool_outputs")
    stream = await aclient.threads.create_and_run(assistant_id="asst_123", stream=True)
    records, steps = [], []
    run = await stream.stream_async(env=ENV, on_tool_call=records.append, on_run_step=steps.append)
    assert run.status == "completed"
    (record,) = records
    assert record.name == "get_current_weather" and record.status == "completed"
    assert record.arguments == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    submit = replay.requests[1]
    assert submit.json == {
        "tool_outputs": [{"tool_call_id": "call_XXNp8YGaFrjrSjgqxtC8JJ1B",
                          "output": "70 degrees and sunny in San Francisco, CA (fahrenheit)"}],
        "stream": True,
    }
    texts = [m.text for m in stream.event_data["messages"]]
    assert texts[-1] == "The current weather in San Francisco, CA is 70 degrees Fahrenheit and sunny."
    assert len(replay.requests) == 2


async def test_parallel_tool_calls_go_in_one_request_in_call_order(replay, aclient):
    calls = [function_call("call_a", "add", {"a": 2, "b": 3}),
             function_call("call_b", "get_current_weather", {"location": "Oslo"}),
             function_call("call_c", "not_exposed", {}),
             function_call("call_d", "add", {"a": 1})]
    replay.stream(("thread.run.created", run_obj("queued")), ("thread.run.requires_action", requires_action(*calls)), DONE)
    replay.stream(("thread.run.in_progress", run_obj("in_progress")), text_delta("msg_1", "5, sunny"),
                  ("thread.run.completed", run_obj("completed")), DONE)
    stream = await aclient.runs.create("thread_1", assistant_id="asst_1", stream=True)
    run = await stream.stream_async(env=ENV)
    assert run.status == "completed"
    submits = replay.received("POST /threads/thread_1/runs/run_1/submit_tool_outputs")
    assert len(submits) == 1
    outputs = submits[0].json["tool_outputs"]
    assert [o["tool_call_id"] for o in outputs] == ["call_a", "call_b", "call_c", "call_d"]
    assert json.loads(outputs[0]["output"]) == {"sum": 5}
    assert outputs[1]["output"] == "70 degrees and sunny in Oslo (celsius)"
    assert outputs[2]["output"].startswith("error:") and "not_exposed" in outputs[2]["output"]
    assert outputs[3]["output"].startswith("error:")  # missing argument b: reported, not raised


async def test_cancel_mid_stream_ends_cancelled_and_keeps_the_partial_reply(replay, aclient):
    cancel_route = "POST /threads/thread_1/runs/run_1/cancel"
    replay.stream(("thread.run.created", run_obj("queued")), ("thread.run.in_progress", run_obj("in_progress")),
                  text_delta("msg_1", "Once upon"), WaitFor(cancel_route),
                  ("thread.run.cancelling", run_obj("cancelling")),
                  ("thread.run.cancelled", run_obj("cancelled")), DONE)
    replay.reply(run_obj("cancelling"), match=cancel_route)
    stream = await aclient.runs.create("thread_1", assistant_id="asst_1", stream=True)
    first_delta = asyncio.Event()
    task = asyncio.create_task(stream.stream_async(on_message_delta=lambda d: first_delta.set(), env={}))
    await asyncio.wait_for(first_delta.wait(), 10)
    await stream.cancel_async()
    run = await asyncio.wait_for(task, 10)
    assert run.status == "cancelled" and stream.status == "cancelled"
    assert len(replay.received(cancel_route)) == 1
    assert stream.event_data["messages"][0].text == "Once upon"
    with pytest.raises(RunError, match="cancelled"):
        await stream.wait_async()


async def test_error_event_mid_stream_raises_and_cancels_the_run(replay, aclient):
    replay.stream(("thread.run.created", run_obj("in_progress")),
                  ("error", {"code": "server_error", "message": "The model crashed"}), DONE)
    replay.reply(run_obj("cancelling"), match="POST /threads/thread_1/runs/run_1/cancel")
    stream = await aclient.runs.create("thread_1", assistant_id="asst_1", stream=True)
    with pytest.raises(jr.StreamError, match="The model crashed") as info:
        await stream.stream_async(env={})
    assert info.value.code == "server_error"
    assert len(replay.received("POST /threads/thread_1/runs/run_1/cancel")) == 1


# -- polling -------------------------------------------------------------------------------------


async def test_wait_polls_at_the_servers_pace_and_does_tool_calls(replay, aclient):
    poll = {"openai-poll-after-ms": "40"}
    retrieve = "GET /threads/thread_1/runs/run_1"
    replay.reply(run_obj("queued"), match="POST /threads/thread_1/runs")
    replay.reply(run_obj("in_progress"), headers=poll, match=retrieve)
    replay.reply(run_obj("in_progress"), headers=poll, match=retrieve)
    replay.reply(requires_action(function_call("call_1", "add", {"a": 20, "b": 22})), headers=poll, match=retrieve)
    replay.reply(run_obj("queued"), match="POST /threads/thread_1/runs/run_1/submit_tool_outputs")
    replay.reply(run_obj("completed", usage={"total_tokens": 9}), headers=poll, match=retrieve)
    run = await aclient.runs.create("thread_1", assistant_id="asst_1")
    assert isinstance(run, jr.Run) and run.status == "queued"
    done = await run.wait_async(env=ENV)
    assert done.status == "completed" and done.usage.total_tokens == 9
    assert replay.pending == 0
    retrieves = replay.received(retrieve)
    assert len(retrieves) == 4
    gaps = [b.at - a.at for a, b in zip(retrieves[:2], retrieves[1:3])]
    assert all(gap >= 0.039 for gap in gaps)  # waited what the server asked between polls
    (submit,) = replay.received("POST /threads/thread_1/runs/run_1/submit_tool_outputs")
    assert submit.json == {"tool_outputs": [{"tool_call_id": "call_1", "output": '{"sum": 42}'}]}


def test_sync_wait_raises_run_error_for_a_failed_run(replay, client):
    replay.reply(run_obj("queued"))
    replay.reply(run_obj("failed", last_error={"code": "rate_limit_exceeded", "message": "quota"}),
                 headers={"openai-poll-after-ms": "1"})
    run = client.runs.create("thread_1", assistant_id="asst_1")
    with pytest.raises(RunError, match="run_1 ended failed: rate_limit_exceeded: quota") as info:
        run.wait(env={})
    assert info.value.status == "failed" and info.value.run["id"] == "run_1"


# -- lists ---------------------------------------------------------------------------------------


def page(ids: list[str], has_more: bool) -> dict:
    return {"object": "list", "data": [{"id": i, "object": "thread.message", "content": []} for i in ids],
            "first_id": ids[0], "last_id": ids[-1], "has_more": has_more}


async def test_list_iterates_every_page(replay, aclient):
    replay.reply(page(["msg_1", "msg_2"], True)).reply(page(["msg_3"], False))
    messages = [m async for m in aclient.messages.list("thread_1", limit=2, order="asc")]
    assert [m.id for m in messages] == ["msg_1", "msg_2", "msg_3"]
    first, second = replay.requests
    assert first.route == second.route == "GET /threads/thread_1/messages"
    assert first.query == {"limit": "2", "order": "asc"}
    assert second.query == {"limit": "2", "order": "asc", "after": "msg_2"}


def test_sync_list_iterates_every_page(replay, client):
    replay.reply(page(["step_1"], True)).reply(page(["step_2"], True)).reply(page(["step_3"], False))
    steps = client.steps.list("thread_1", "run_1").to_list()
    assert [s.id for s in steps] == ["step_1", "step_2", "step_3"]
    assert [r.query.get("after") for r in replay.requests] == [None, "step_1", "step_2"]


async def test_sync_and_async_use_one_backend_from_two_loops(replay):
    client = jr.Client(base_url=replay.url, api_key=KEY)
    try:
        replay.reply({"id": "thread_1", "object": "thread"}).reply({"id": "thread_1", "object": "thread"})
        from_portal = client.threads.retrieve("thread_1")  # blocks this loop; runs on the portal's
        from_here = await client.async_client.threads.retrieve("thread_1")  # this test's loop
        assert from_portal.id == from_here.id == "thread_1"
        assert len(replay.received("GET /threads/thread_1")) == 2
    finally:
        await client.async_client.aclose()
