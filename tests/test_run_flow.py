"""One run-flow suite, two backends: the embedded engine in-process (``Client(store=":memory:")``)
and the HTTP client against the same engine served on a loopback port. Same calls, same outcomes.

Models: ``scripted:`` files for deterministic replies, and the fake Chat Completions server
(``compat:fake``) where the test must see what the engine asked the model for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.errors import RunError
from tests.fakes.chat_server import FakeChatServer, text_reply, tool_calls_reply
from tests.served import ServedEngine

KEY = "run-flow-key"
LONG = " ".join(f"w{i}" for i in range(300))


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


def get_time(tz: str) -> str:
    """The time in a time zone."""
    return f"12:00 {tz}"


ENV = {"get_weather": get_weather, "get_time": get_time}


@pytest.fixture(params=["embedded", "served"])
def client(request: pytest.FixtureRequest, chat_server: FakeChatServer) -> Iterator[jr.Client]:
    """The same Client API over the embedded engine, or over HTTP to the served engine; both
    with ``compat:`` models pointed at the fake Chat Completions server."""
    config = {"base_url": chat_server.base_url, "retry_backoff": 0.001}
    if request.param == "embedded":
        c = jr.Client(store=":memory:", model_config=config)
        try:
            yield c
        finally:
            c.close()
    else:
        with ServedEngine(api_key=KEY, model_config=config) as served:
            c = jr.Client(base_url=served.url, api_key=KEY)
            try:
                yield c
            finally:
                c.close()


def ask(client: jr.Client, model: str, text: str, **assistant: Any) -> tuple[Any, Any]:
    asst = client.assistants.create(model=model, instructions="Answer briefly.", **assistant)
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content=text)
    return asst, thread


def messages(client: jr.Client, thread_id: str) -> list[Any]:
    return client.messages.list(thread_id, order="asc").to_list()


def test_streamed_reply_arrives_in_deltas(client, script):
    asst, thread = ask(client, script([{"text": "The north grew fastest: +12%."}]), "Who grew?")
    deltas: list[str] = []
    finished: list[Any] = []
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    run = stream.until_done(
        on_message_delta=lambda d: deltas.append(d.delta.content[0].text.value),
        on_message=lambda m: finished.append(m) if m.status == "completed" else None,
        env=ENV,
    )
    assert run.status == "completed"
    assert len(deltas) > 1 and "".join(deltas) == "The north grew fastest: +12%."
    assert [m.text for m in finished] == ["The north grew fastest: +12%."]
    assert run.usage.completion_tokens == 5
    stored = messages(client, thread.id)
    assert [(m.role, m.text) for m in stored] == [
        ("user", "Who grew?"), ("assistant", "The north grew fastest: +12%.")]
    assert [m.text for m in stream.event_data["messages"]] == ["The north grew fastest: +12%."]


def test_tool_call_round_trip(client, script):
    model = script([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
                    {"text": "Sunny, 21 degrees."}])
    asst, thread = ask(client, model, "Weather in Oslo?", tools=[get_weather])
    records: list[Any] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        env=ENV, on_tool_call=records.append)
    assert run.status == "completed"
    assert [(r.name, r.arguments, r.status) for r in records] == [
        ("get_weather", {"city": "Oslo"}, "completed")]
    assert json.loads(records[0].output) == get_weather("Oslo")
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    [call] = steps[0].step_details.tool_calls
    assert json.loads(call.function.output) == get_weather("Oslo")
    assert messages(client, thread.id)[-1].text == "Sunny, 21 degrees."


def test_parallel_tool_calls_all_run_and_all_outputs_go_back(client, script):
    model = script([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                    {"name": "get_time", "arguments": {"tz": "CET"}},
                                    {"name": "get_weather", "arguments": {"city": "Rome"}}]},
                    {"text": "All done."}])
    asst, thread = ask(client, model, "Three things?", tools=[get_weather, get_time])
    records: list[Any] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        env=ENV, on_tool_call=records.append)
    assert run.status == "completed"
    assert [(r.name, r.arguments) for r in records] == [
        ("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"}),
        ("get_weather", {"city": "Rome"})]
    assert len({r.tool_call_id for r in records}) == 3
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    outputs = [c.function.output for c in steps[0].step_details.tool_calls]
    assert outputs == [r.output for r in records]


def test_cancel_mid_stream_keeps_the_partial_reply(client, script):
    asst, thread = ask(client, script([{"text": LONG}], delay=0.01), "Talk a lot.")
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    deltas: list[str] = []

    def on_delta(delta: Any) -> None:
        deltas.append(delta.delta.content[0].text.value)
        if len(deltas) == 3:
            stream.cancel()

    run = stream.until_done(on_message_delta=on_delta, env=ENV)
    assert run.status == "cancelled"
    reply = messages(client, thread.id)[-1]
    assert reply.role == "assistant"
    assert reply.status == "incomplete"
    assert reply.incomplete_details.reason == "run_cancelled"
    kept = reply.text.split()
    assert 3 <= len(kept) < 300 and kept == LONG.split()[: len(kept)]
    assert client.runs.retrieve(thread.id, run.id).status == "cancelled"


def test_polling_wait_does_the_tool_calls(client, script):
    model = script([{"tool_calls": [{"name": "get_time", "arguments": {"tz": "UTC"}}]},
                    {"text": "It is noon."}])
    asst, thread = ask(client, model, "Time?", tools=[get_time])
    run = client.runs.create(thread.id, assistant_id=asst.id)
    assert isinstance(run, jr.Run) and run.status in ("queued", "in_progress", "requires_action")
    done = run.wait(env=ENV, timeout=30, poll_interval=0.01)
    assert done.status == "completed"
    assert messages(client, thread.id)[-1].text == "It is noon."
    steps = run.list_steps(order="asc")
    assert steps[0].step_details.tool_calls[0].function.output == "12:00 UTC"


def test_max_completion_tokens_ends_incomplete(client, script):
    asst, thread = ask(client, script([{"text": LONG}]), "Go on.")
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                                max_completion_tokens=256)
    run = stream.until_done(env=ENV)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    reply = messages(client, thread.id)[-1]
    assert reply.status == "incomplete"
    assert reply.text.split() == LONG.split()[:256]
    polled = client.runs.create(thread.id, assistant_id=asst.id, max_completion_tokens=256)
    with pytest.raises(RunError) as info:
        polled.wait(env=ENV, timeout=30, poll_interval=0.01)
    assert info.value.status == "incomplete"


def test_tool_choice_required_forces_the_first_call_only(client, chat_server):
    chat_server.add(tool_calls_reply([("call_t", "get_time", '{"tz": "CET"}')]),
                    text_reply("Noon in CET."))
    asst, thread = ask(client, "compat:fake", "Time?", tools=[get_time])
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                             tool_choice="required").until_done(env=ENV)
    assert run.status == "completed" and run.tool_choice == "required"
    first, second = (r.body for r in chat_server.requests)
    assert first["tool_choice"] == "required"
    assert second["tool_choice"] == "auto"  # forcing again after the output would loop
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_t",
                                      "content": "12:00 CET"}
    assert messages(client, thread.id)[-1].text == "Noon in CET."


def test_tool_choice_none_asks_for_text_only(client, chat_server):
    chat_server.add(text_reply("No tools needed."))
    asst, thread = ask(client, "compat:fake", "Time?", tools=[get_time])
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                             tool_choice="none").until_done(env=ENV)
    assert run.status == "completed"
    [sent] = chat_server.requests
    assert sent.body["tool_choice"] == "none"
    assert [s.type for s in client.steps.list(thread.id, run.id).to_list()] == ["message_creation"]


def test_thread_history_carries_across_three_runs(client, chat_server):
    chat_server.add(text_reply("First answer."),
                    tool_calls_reply([("call_w", "get_weather", '{"city": "Oslo"}')]),
                    text_reply("Sunny in Oslo."),
                    text_reply("Third answer."))
    asst, thread = ask(client, "compat:fake", "one", tools=[get_weather])
    for k, text in enumerate(("one", "two", "three")):
        if k:
            client.messages.create(thread.id, role="user", content=text)
        run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env=ENV)
        assert run.status == "completed"
    last = chat_server.requests[-1].body["messages"]
    assert last[0] == {"role": "system", "content": "Answer briefly."}
    convo = last[1:]
    assert [m["role"] for m in convo] == ["user", "assistant", "user", "assistant", "tool",
                                          "assistant", "user"]
    assert [convo[i]["content"] for i in (0, 1, 2, 5, 6)] == [
        "one", "First answer.", "two", "Sunny in Oslo.", "three"]
    assert convo[3]["tool_calls"][0]["id"] == "call_w"
    assert convo[3]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                     "arguments": '{"city": "Oslo"}'}
    assert convo[4]["tool_call_id"] == "call_w"
    assert json.loads(convo[4]["content"]) == get_weather("Oslo")
    assert [(m.role, m.text) for m in messages(client, thread.id)] == [
        ("user", "one"), ("assistant", "First answer."), ("user", "two"),
        ("assistant", "Sunny in Oslo."), ("user", "three"), ("assistant", "Third answer.")]


@pytest.mark.parametrize("kind", ["embedded", "served"])
async def test_async_client_streams_on_the_callers_loop(kind, script):
    """``AsyncClient`` + ``stream_async`` on both backends (the notebook path)."""
    model = script([{"text": "Async hello."}])
    served = ServedEngine(api_key=KEY).start() if kind == "served" else None
    client = (jr.AsyncClient(base_url=served.url, api_key=KEY) if served
              else jr.AsyncClient(store=":memory:"))
    deltas: list[str] = []
    try:
        asst = await client.assistants.create(model=model, instructions="Be brief.")
        thread = await client.threads.create(messages=[{"role": "user", "content": "hi"}])
        stream = await client.runs.create(thread.id, assistant_id=asst.id, stream=True)
        run = await stream.stream_async(
            on_message_delta=lambda d: deltas.append(d.delta.content[0].text.value), env=ENV)
    finally:
        await client.aclose()
        if served:
            served.stop()
    assert run.status == "completed"
    assert len(deltas) == 2 and "".join(deltas) == "Async hello."
