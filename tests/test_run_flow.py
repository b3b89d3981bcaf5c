"""One run-flow suite, two backends: the embedded engine in-process (``Client(store=":memory:")``)
and the HTTP client against the same engine served on a loopback port. Same calls, same outcomes.

Models: ``scripted:`` files for deterministic replies, and, where the test must see what the
engine asked the model for, a fake model server: each such test runs against the fake Chat
Completions server (``compat:fake``) and the fake Responses server (``responses:fake``) alike,
through the ``upstream`` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.errors import RunError
from tests.fakes import chat_server as chat_fake
from tests.fakes import responses_server as responses_fake
from tests.fakes.chat_server import FakeChatServer
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


class Upstream:
    """A fake model server and how to speak to it: ``model`` is the id to use, ``text_reply`` /
    ``tool_calls_reply`` build its replies, ``sent(i)`` is request ``i`` as Chat Completions
    messages and options (a Responses body is read back through its input items)."""

    def __init__(self, protocol: str, server: FakeChatServer) -> None:
        self.protocol, self.server = protocol, server
        self.model = f"{protocol}:fake"
        fake = chat_fake if protocol == "compat" else responses_fake
        self.text_reply, self.tool_calls_reply = fake.text_reply, fake.tool_calls_reply

    def add(self, *replies: Any) -> None:
        self.server.add(*replies)

    @property
    def requests(self) -> list[Any]:
        return self.server.requests

    def sent(self, i: int) -> dict[str, Any]:
        body = self.server.requests[i].body
        if self.protocol == "compat":
            return body
        return {**body, "messages": responses_as_chat(body)}


def responses_as_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses body's instructions and input items as the Chat Completions messages they
    stand for (adjacent function calls fold into one assistant message)."""
    out: list[dict[str, Any]] = []
    if body.get("instructions"):
        out.append({"role": "system", "content": body["instructions"]})
    for item in body["input"]:
        kind = item.get("type")
        if kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        else:
            text = "".join(p["text"] for p in item["content"])
            out.append({"role": item["role"], "content": text})
    return out


@pytest.fixture(params=["compat", "responses"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    """The fake Chat Completions server, then the fake Responses server."""
    server = (FakeChatServer() if request.param == "compat"
              else responses_fake.FakeResponsesServer()).start()
    try:
        yield Upstream(request.param, server)
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "served"])
def client(request: pytest.FixtureRequest) -> Iterator[jr.Client]:
    """The same Client API over the embedded engine, or over HTTP to the served engine; both
    with model ids pointed at the test's fake model server (``upstream`` when it asks for one)."""
    if "upstream" in request.fixturenames:
        base_url = request.getfixturevalue("upstream").server.base_url
    else:
        base_url = request.getfixturevalue("chat_server").base_url
    config = {"base_url": base_url, "retry_backoff": 0.001}
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


def test_tool_choice_required_forces_the_first_call_only(upstream, client):
    upstream.add(upstream.tool_calls_reply([("call_t", "get_time", '{"tz": "CET"}')]),
                 upstream.text_reply("Noon in CET."))
    asst, thread = ask(client, upstream.model, "Time?", tools=[get_time])
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                             tool_choice="required").until_done(env=ENV)
    assert run.status == "completed" and run.tool_choice == "required"
    first, second = upstream.sent(0), upstream.sent(1)
    assert first["tool_choice"] == "required"
    assert second["tool_choice"] == "auto"  # forcing again after the output would loop
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_t",
                                      "content": "12:00 CET"}
    assert messages(client, thread.id)[-1].text == "Noon in CET."


def test_tool_choice_none_asks_for_text_only(upstream, client):
    upstream.add(upstream.text_reply("No tools needed."))
    asst, thread = ask(client, upstream.model, "Time?", tools=[get_time])
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                             tool_choice="none").until_done(env=ENV)
    assert run.status == "completed"
    assert len(upstream.requests) == 1
    assert upstream.sent(0)["tool_choice"] == "none"
    assert [s.type for s in client.steps.list(thread.id, run.id).to_list()] == ["message_creation"]


def test_thread_history_carries_across_three_runs(upstream, client):
    upstream.add(upstream.text_reply("First answer."),
                 upstream.tool_calls_reply([("call_w", "get_weather", '{"city": "Oslo"}')]),
                 upstream.text_reply("Sunny in Oslo."),
                 upstream.text_reply("Third answer."))
    asst, thread = ask(client, upstream.model, "one", tools=[get_weather])
    for k, text in enumerate(("one", "two", "three")):
        if k:
            client.messages.create(thread.id, role="user", content=text)
        run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env=ENV)
        assert run.status == "completed"
    last = upstream.sent(-1)["messages"]
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


def test_model_server_parallel_calls_round_trip(upstream, client):
    upstream.add(upstream.tool_calls_reply([("call_o", "get_weather", '{"city": "Oslo"}'),
                                            ("call_c", "get_time", '{"tz": "CET"}')], split=3),
                 upstream.text_reply("Sunny, and noon."))
    asst, thread = ask(client, upstream.model, "Both?", tools=[get_weather, get_time])
    records: list[Any] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        env=ENV, on_tool_call=records.append)
    assert run.status == "completed"
    assert [(r.tool_call_id, r.name, r.arguments) for r in records] == [
        ("call_o", "get_weather", {"city": "Oslo"}), ("call_c", "get_time", {"tz": "CET"})]
    back = upstream.sent(1)["messages"][-2:]
    assert [(m["tool_call_id"], m["content"]) for m in back] == [
        ("call_o", json.dumps(get_weather("Oslo"))), ("call_c", "12:00 CET")]
    assert messages(client, thread.id)[-1].text == "Sunny, and noon."
    assert run.usage.prompt_tokens == 11 + 7 and run.usage.completion_tokens == 5 + 3


def test_model_server_reply_streams_and_is_stored(upstream, client):
    upstream.add(upstream.text_reply("North", " grew", " fastest."))
    asst, thread = ask(client, upstream.model, "Who grew?")
    deltas: list[str] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        on_message_delta=lambda d: deltas.append(d.delta.content[0].text.value), env=ENV)
    assert run.status == "completed"
    assert deltas == ["North", " grew", " fastest."]
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (7, 3)
    assert upstream.sent(0)["messages"] == [{"role": "system", "content": "Answer briefly."},
                                           {"role": "user", "content": "Who grew?"}]
    assert messages(client, thread.id)[-1].text == "North grew fastest."


def test_model_server_reasoning_becomes_a_step_before_the_reply(upstream, client):
    upstream.add(upstream.text_reply("Forty-two.", reasoning=[["Six", " sevens"], ["are 42."]],
                                     usage=(12, 40, 30)))
    asst, thread = ask(client, upstream.model, "6*7?")
    step_deltas: list[Any] = []
    done_steps: list[Any] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        on_run_step_delta=step_deltas.append,
        on_run_step=lambda s: done_steps.append(s) if s.status == "completed" else None, env=ENV)
    assert run.status == "completed"
    assert run.usage.completion_tokens_details["reasoning_tokens"] == 30
    assert [s.type for s in done_steps] == ["reasoning", "message_creation"]
    assert done_steps[0].step_details.reasoning["summary"] == "Six sevens\n\nare 42."
    assert len(step_deltas) == 3
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    assert [s.type for s in steps] == ["reasoning", "message_creation"]
    assert steps[1].usage.completion_tokens_details["reasoning_tokens"] == 30
    assert messages(client, thread.id)[-1].text == "Forty-two."
    # the next call's history leaves the reasoning out
    client.messages.create(thread.id, role="user", content="and 6*8?")
    upstream.add(upstream.text_reply("48."))
    client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env=ENV)
    assert [m["role"] for m in upstream.sent(1)["messages"]] == ["system", "user", "assistant", "user"]
