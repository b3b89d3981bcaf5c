"""The Responses adapter against the fake Responses server on a loopback port; the shared HTTP
layer's deadlines and JSON error answers (both adapters); a reasoning run end to end, including
openai-python, unchanged, streaming it through ``jupyter-runs serve``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.backends.local.models import (
    ChatCompletionsModel,
    Finish,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
    resolve_model,
)
from jupyter_runs.backends.local.models.responses import ResponsesModel
from jupyter_runs.errors import ModelError
from tests.fakes import chat_server as chat_fake
from tests.fakes.chat_server import FakeChatServer, Reply
from tests.fakes.responses_server import (
    Events,
    FakeResponsesServer,
    error_event_reply,
    error_reply,
    failed_reply,
    incomplete_reply,
    text_reply,
    tool_calls_reply,
)
from tests.served import ServerProcess

pytestmark = pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning")

SECRET = "sk-resp-5ecret-never-shown"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                           "parameters": {"type": "object"}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]


@pytest.fixture
def responses_server() -> Iterator[FakeResponsesServer]:
    server = FakeResponsesServer().start()
    try:
        yield server
    finally:
        server.stop()


def adapter(server: FakeChatServer, **options: Any) -> ResponsesModel:
    options.setdefault("retry_backoff", 0.001)
    return ResponsesModel.for_provider(base_url=server.base_url, api_key=SECRET, name="fake",
                                       **options)


def request(**fields: Any) -> ModelRequest:
    fields.setdefault("messages", [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hi"}])
    return ModelRequest(model="fake", **fields)


async def collect(model: Any, req: ModelRequest | None = None) -> list[Any]:
    try:
        return [event async for event in model.stream(req or request())]
    finally:
        await model.aclose()


def calls_of(events: list[Any]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            call = calls.setdefault(e.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or e.id
            call["name"] = call["name"] or e.name
            call["arguments"] += e.arguments
    return calls


# -- the fake is the reference ---------------------------------------------------------------

def test_fake_events_are_valid_responses_stream_events():
    """Every event the fake sends parses as openai-python's own ``ResponseStreamEvent``."""
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    check = TypeAdapter(ResponseStreamEvent)
    replies = [text_reply("a", "b", reasoning=[["Think", "ing."], ["More."]], usage=(5, 9, 6, 2)),
               tool_calls_reply([("c1", "f", '{"a": 1}'), ("c2", "g", '{"b": 2}')], interleave=True),
               incomplete_reply("cut"), failed_reply("boom", "server_error", "par"),
               error_event_reply("bad")]
    seen = set()
    for reply in replies:
        for event in reply.chunks:
            parsed = check.validate_python(event)
            assert parsed.type == event["type"]
            seen.add(event["type"])
    assert {"response.reasoning_summary_text.delta", "response.function_call_arguments.delta",
            "response.output_text.delta", "response.completed", "response.incomplete",
            "response.failed", "error"} <= seen


# -- what the adapter sends and reads --------------------------------------------------------

async def test_text_streams_with_usage_details_and_a_stateless_body(responses_server):
    responses_server.add(text_reply("Hello", " there.", usage=(40, 12, 8, 32)))
    events = await collect(adapter(responses_server), request(max_tokens=300, temperature=0.2))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there."]
    assert events[-2:] == [Usage(40, 12, reasoning_tokens=8, cached_tokens=32), Finish("stop")]
    [sent] = responses_server.requests
    assert sent.path == "/v1/responses"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    body = sent.body
    assert body["store"] is False and body["stream"] is True
    assert "previous_response_id" not in body
    assert body["instructions"] == "Be brief."
    assert body["input"] == [{"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "Hi"}]}]
    assert (body["max_output_tokens"], body["temperature"]) == (300, 0.2)
    assert body["reasoning"] == {"summary": "auto"}


async def test_reasoning_summary_streams_as_reasoning_deltas_by_part(responses_server):
    responses_server.add(text_reply("42.", reasoning=[["Add", "ing up"], ["Checking."]],
                                    usage=(10, 50, 40)))
    events = await collect(adapter(responses_server))
    thoughts = [e for e in events if isinstance(e, ReasoningDelta)]
    assert [(t.text, t.part) for t in thoughts] == [("Add", 0), ("ing up", 0), ("Checking.", 1)]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])
    assert events[-2] == Usage(10, 50, reasoning_tokens=40)


@pytest.mark.parametrize("interleave", [False, True])
async def test_single_and_parallel_function_calls_with_split_arguments(responses_server, interleave):
    calls = [("call_a", "get_weather", '{"city": "Oslo"}'), ("call_b", "get_time", '{"tz": "CET"}')]
    responses_server.add(tool_calls_reply(calls[:1], split=4),
                         tool_calls_reply(calls, split=3, interleave=interleave))
    model = adapter(responses_server)
    one = [e async for e in model.stream(request(tools=TOOLS))]
    two = await collect(model, request(tools=TOOLS, tool_choice={"type": "function",
                                                                 "function": {"name": "get_time"}},
                                       parallel_tool_calls=True))
    assert calls_of(one) == {0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert len([e for e in one if isinstance(e, ToolCallDelta)]) == 5  # added + 4 pieces
    assert calls_of(two) == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"tz": "CET"}'}}
    assert one[-1] == two[-1] == Finish("tool_calls")
    body = responses_server.requests[1].body
    assert body["tools"][0] == {"type": "function", "name": "get_weather", "description": "Weather.",
                                "parameters": {"type": "object"}, "strict": False}
    assert body["tool_choice"] == {"type": "function", "name": "get_time"}
    assert body["parallel_tool_calls"] is True


def test_history_with_tool_calls_becomes_input_items():
    model = ResponsesModel("http://127.0.0.1:9/v1", name="x")
    body = model.payload(request(messages=[
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]))
    assert body["instructions"] == "S"
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}]}]


async def test_response_failed_is_a_model_error_with_the_servers_message(responses_server):
    responses_server.add(failed_reply("The model crashed", "server_error", "partial"))
    with pytest.raises(ModelError) as info:
        await collect(adapter(responses_server))
    assert "The model crashed" in info.value.message and info.value.code == "server_error"


async def test_error_event_is_a_model_error(responses_server):
    responses_server.add(error_event_reply("overloaded upstream"))
    with pytest.raises(ModelError, match="overloaded upstream"):
        await collect(adapter(responses_server))


async def test_incomplete_by_max_output_tokens_finishes_length(responses_server):
    responses_server.add(incomplete_reply("Once", " upon"))
    events = await collect(adapter(responses_server), request(max_tokens=4))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Once upon"
    assert events[-1] == Finish("length")
    assert responses_server.requests[0].body["max_output_tokens"] == 16  # OpenAI's minimum


async def test_429_then_success_waits_and_retries(responses_server):
    responses_server.add(error_reply(429, "slow down", type="requests",
                                     headers={"retry-after-ms": "20"}), text_reply("ok"))
    events = await collect(adapter(responses_server, max_retries=2))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    assert len(responses_server.requests) == 2


async def test_dropped_connection_mid_reply_is_a_server_error(responses_server):
    reply = text_reply("one", " two")
    reply.chunks = reply.chunks[:8]
    reply.end = "drop"
    responses_server.add(reply)
    with pytest.raises(ModelError) as info:
        await collect(adapter(responses_server))
    assert "connection broke mid-reply" in info.value.message
    assert len(responses_server.requests) == 1  # never retried after text reached the run
    assert responses_server.outcomes == ["dropped"]


async def test_stream_ending_without_a_terminal_event_is_an_error(responses_server):
    responses_server.add(Reply(Events().text("half", done=False).events, end="eof"))
    with pytest.raises(ModelError, match="stream ended before the model finished"):
        await collect(adapter(responses_server))


async def test_a_model_without_reasoning_is_asked_again_without_it(responses_server):
    responses_server.add(error_reply(400, "Unsupported parameter: 'reasoning.summary'",
                                     type="invalid_request_error"), text_reply("fine"), text_reply("x"))
    model = adapter(responses_server)
    events = [e async for e in model.stream(request())]
    await collect(model)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["fine"]
    bodies = [r.body for r in responses_server.requests]
    assert "reasoning" in bodies[0] and "reasoning" not in bodies[1] and "reasoning" not in bodies[2]


def test_responses_ids_resolve_with_the_compat_config_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    model = resolve_model("responses:gpt-5-mini")
    assert isinstance(model, ResponsesModel) and model.base_url == "https://api.openai.com/v1"
    assert SECRET not in repr(model)
    local = resolve_model("responses:gpt-oss", base_url="http://127.0.0.1:11434/v1", api_key="k",
                          timeout=5, max_retries=0, deadline=9, idle_timeout=3)
    assert (local.base_url, local.http.deadline, local.http.idle_timeout) == (
        "http://127.0.0.1:11434/v1", 9.0, 3.0)
    with pytest.raises(ModelError, match="'temprature'"):
        resolve_model("responses:x", base_url="http://127.0.0.1:1/v1", temprature=1)


# -- the shared HTTP layer: deadlines and 200-with-an-error (both adapters) -------------------

def _chat(server: FakeChatServer, **options: Any) -> ChatCompletionsModel:
    return ChatCompletionsModel.for_provider("compat", base_url=server.base_url, name="fake",
                                             retry_backoff=0.001, **options)


@pytest.mark.parametrize("protocol", ["compat", "responses"])
async def test_keepalives_without_content_hit_the_idle_timeout(protocol, chat_server, responses_server):
    if protocol == "compat":
        server, model = chat_server, _chat(chat_server, idle_timeout=1.0)
        server.add(Reply([chat_fake.chunk({"content": "Hi"})], keepalives=400, delay=0.05))
    else:
        server, model = responses_server, adapter(responses_server, idle_timeout=1.0)
        server.add(Reply(Events().text("Hi", done=False).events, keepalives=400, delay=0.05,
                         end="eof"))
    seen: list[Any] = []
    with pytest.raises(ModelError) as info:
        async for event in model.stream(request()):
            seen.append(event)
    await model.aclose()
    assert info.value.code == "server_error" and "idle_timeout" in info.value.message
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["Hi"]
    for _ in range(200):  # the connection was closed, not left trickling
        if server.outcomes:
            break
        await asyncio.sleep(0.02)
    assert server.outcomes == ["client closed"]


async def test_content_trickle_is_cut_by_the_overall_deadline(chat_server):
    chat_server.add(Reply([chat_fake.chunk({"content": f"w{i} "}) for i in range(2000)], delay=0.02))
    model = _chat(chat_server, deadline=0.5, idle_timeout=10)
    texts: list[str] = []
    with pytest.raises(ModelError) as info:
        async for event in model.stream(request()):
            if isinstance(event, TextDelta):
                texts.append(event.text)
    await model.aclose()
    assert "deadline" in info.value.message
    assert 0 < len(texts) < 2000


@pytest.mark.parametrize("protocol", ["compat", "responses"])
async def test_200_with_a_json_error_body_carries_the_servers_message(protocol, chat_server,
                                                                      responses_server):
    body = {"error": {"message": "model 'fake' is not loaded", "type": "invalid_request_error"}}
    server = chat_server if protocol == "compat" else responses_server
    server.add(Reply(json_body=body))
    model = _chat(server) if protocol == "compat" else adapter(server)
    with pytest.raises(ModelError) as info:
        await collect(model)
    assert "model 'fake' is not loaded" in info.value.message


def test_engine_run_fails_with_the_200_json_error_in_last_error(chat_server):
    chat_server.add(Reply(json_body={"error": {"message": "quota exhausted for project"}}))
    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url})
    try:
        asst = client.assistants.create(model="compat:fake")
        thread = client.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env={})
    finally:
        client.close()
    assert run.status == "failed"
    assert "quota exhausted for project" in run.last_error.message


def test_engine_run_with_a_trickling_model_ends_failed_not_stuck(chat_server):
    chat_server.add(Reply([chat_fake.chunk({"content": "Hi"})], keepalives=1000, delay=0.05))
    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url,
                                                       "idle_timeout": 0.4})
    try:
        asst = client.assistants.create(model="compat:fake")
        thread = client.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env={})
        reply = client.messages.list(thread.id).to_list()[0]
    finally:
        client.close()
    assert run.status == "failed" and "idle_timeout" in run.last_error.message
    assert reply.text == "Hi" and reply.status == "incomplete"


# -- a reasoning run, end to end --------------------------------------------------------------

def _reasoning_run(client: jr.Client) -> tuple[Any, Any, list[tuple[str, Any]]]:
    asst = client.assistants.create(model="responses:fake", instructions="Think.")
    thread = client.threads.create(messages=[{"role": "user", "content": "6*7?"}])
    events: list[tuple[str, Any]] = []
    run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(
        env={}, on_event=lambda e: events.append((e.event, e.data)))
    return run, thread, events


def test_reasoning_is_a_run_step_before_the_reply_with_its_tokens(responses_server):
    responses_server.add(text_reply("42.", reasoning=[["Multiply", " six"], ["Check."]],
                                    usage=(20, 60, 50, 16)))
    client = jr.Client(store=":memory:", model_config={"base_url": responses_server.base_url,
                                                       "api_key": SECRET})
    try:
        run, thread, events = _reasoning_run(client)
        steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    finally:
        client.close()
    assert run.status == "completed"
    assert run.usage.completion_tokens_details["reasoning_tokens"] == 50
    assert run.usage.prompt_tokens_details["cached_tokens"] == 16
    assert [s.type for s in steps] == ["reasoning", "message_creation"]
    thought = steps[0]
    assert thought.step_details.reasoning["summary"] == "Multiply six\n\nCheck."
    assert thought.status == "completed"
    # the count, known at the end of the call, is in the usage of the step the reasoning led to
    assert steps[1].usage.completion_tokens_details == {"reasoning_tokens": 50}
    assert steps[1].usage.completion_tokens == 60
    names = [n for n, _ in events]
    # the reasoning step completes before the reply's step starts
    done = names.index("thread.run.step.completed")
    assert names.index("thread.message.created") > done
    summary = "".join(d["delta"]["step_details"]["reasoning"]["summary"] for n, d in events
                      if n == "thread.run.step.delta" and "step_details" in d["delta"])
    assert summary == "Multiply six\n\nCheck."


def test_openai_python_streams_a_reasoning_run_through_jupyter_runs_serve(responses_server):
    """openai-python 1.x, unchanged, with its AssistantEventHandler: no errors, the text arrives,
    and the reasoning step is passed over as a step of a type it does not act on."""
    import openai
    from openai import AssistantEventHandler

    responses_server.add(
        text_reply("Forty", "-two.", reasoning=[["Six", " times seven"]], usage=(9, 30, 20)),
        tool_calls_reply([("call_z", "zap", '{"n": 1}')], reasoning=[["Need zap."]],
                         usage=(5, 9, 4)),
        text_reply("Zapped."))
    env = {"OPENAI_BASE_URL": responses_server.base_url, "OPENAI_API_KEY": SECRET}
    with ServerProcess("--api-key", "k", "--store", ":memory:", "--model-idle-timeout", "60",
                       env=env) as served:
        client = openai.OpenAI(base_url=served.url, api_key="k", max_retries=0)
        asst = client.beta.assistants.create(
            model="responses:fake", tools=[{"type": "function", "function": {
                "name": "zap", "parameters": {"type": "object"}}}])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "6*7?"}])

        class Handler(AssistantEventHandler):
            def __init__(self) -> None:
                super().__init__()
                self.text, self.steps, self.events = "", [], []

            def on_event(self, event: Any) -> None:
                self.events.append(event.event)

            def on_text_delta(self, delta: Any, snapshot: Any) -> None:
                self.text += delta.value

            def on_run_step_done(self, step: Any) -> None:
                self.steps.append(step.type)

        first = Handler()
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id,
                                             event_handler=first) as stream:
            stream.until_done()
        assert first.text == "Forty-two."
        assert first.steps == ["reasoning", "message_creation"]
        assert first.current_run.status == "completed"
        assert first.current_run.usage.total_tokens == 39

        client.beta.threads.messages.create(thread.id, role="user", content="zap it")
        second = Handler()
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id,
                                             event_handler=second) as stream:
            stream.until_done()
        run = second.current_run
        assert run.status == "requires_action"
        [call] = run.required_action.submit_tool_outputs.tool_calls
        third = Handler()
        with client.beta.threads.runs.submit_tool_outputs_stream(
                thread_id=thread.id, run_id=run.id, event_handler=third,
                tool_outputs=[{"tool_call_id": call.id, "output": "ok"}]) as stream:
            stream.until_done()
        assert third.text == "Zapped." and third.current_run.status == "completed"
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
        assert [s.type for s in steps] == ["reasoning", "tool_calls", "message_creation"]
        assert json.loads(call.function.arguments) == {"n": 1}
    sent = responses_server.requests[-1].body
    assert sent["input"][-1] == {"type": "function_call_output", "call_id": "call_z", "output": "ok"}


# -- the Node SDK ---------------------------------------------------------------------------

NODE_SDKS = [d for d in os.environ.get("JUPYTER_RUNS_NODE_OPENAI", "").split(os.pathsep) if d]


@pytest.mark.parametrize("sdk_dir", NODE_SDKS or ["-"])
def test_node_sdk_streams_a_reasoning_run_through_jupyter_runs_serve(responses_server, sdk_dir):
    """The official Node SDK's AssistantStream, unchanged: no error, the text arrives, the
    reasoning step goes by as a step type it does not act on."""
    if not NODE_SDKS:  # .ci/run installs the SDK; outside CI a developer may not have it
        why = ("set JUPYTER_RUNS_NODE_OPENAI to directories with the openai npm package installed "
               "(npm install --prefix DIR openai@4.104.0), as .ci/run does")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    assert node, "node is needed for the Node SDK test"
    responses_server.add(text_reply("Forty", "-two.", reasoning=[["Six", " times"], ["seven."]],
                                    usage=(9, 30, 20)),
                         tool_calls_reply([("call_z", "zap", '{"n": 1}')], reasoning=[["Need zap."]]),
                         text_reply("Zapped."))
    script = Path(__file__).parent / "node" / "assistants_stream.cjs"
    env = {"OPENAI_BASE_URL": responses_server.base_url, "OPENAI_API_KEY": SECRET}
    with ServerProcess("--api-key", "k", "--store", ":memory:", env=env) as served:
        done = subprocess.run([node, str(script), sdk_dir, served.url, "k"], capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["status"] == "completed"
    assert seen["text"] == "Forty-two."
    assert seen["steps"] == ["reasoning", "message_creation"]
    assert seen["stepDeltas"] == 3  # the summary's three pieces
    assert seen["usage"]["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert seen["messages"][0] == "Forty-two."  # listed newest first, after the first run
    assert seen["toolStatus"] == "requires_action"
    assert seen["toolCall"] == {"id": "call_z", "name": "zap", "arguments": '{"n": 1}'}
    assert (seen["afterText"], seen["afterStatus"]) == ("Zapped.", "completed")


def _engine(server: FakeChatServer) -> jr.Client:
    return jr.Client(store=":memory:", model_config={"base_url": server.base_url,
                                                     "retry_backoff": 0.001})


def test_a_failed_response_during_reasoning_fails_the_run_and_its_reasoning_step(responses_server):
    events = Events().reasoning(["Thinking", " hard"])
    responses_server.add(Reply(events.failed("server_error", "The model crashed"), end="eof"))
    client = _engine(responses_server)
    try:
        run, thread, _ = _reasoning_run(client)
        steps = client.steps.list(thread.id, run.id).to_list()
    finally:
        client.close()
    assert run.status == "failed" and "The model crashed" in run.last_error.message
    assert [(s.type, s.status) for s in steps] == [("reasoning", "failed")]
    assert steps[0].step_details.reasoning["summary"] == "Thinking hard"  # kept
    assert "The model crashed" in steps[0].last_error.message


def test_cancel_while_reasoning_ends_the_reasoning_step_cancelled(responses_server):
    pieces = [f" thought{i}" for i in range(300)]
    responses_server.add(Reply(Events().reasoning(pieces).text("late").completed(None), end="eof",
                               delay=0.01))
    client = _engine(responses_server)
    try:
        asst = client.assistants.create(model="responses:fake")
        thread = client.threads.create(messages=[{"role": "user", "content": "think"}])
        stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
        deltas: list[Any] = []

        def on_step_delta(delta: Any) -> None:
            deltas.append(delta)
            if len(deltas) == 3:
                stream.cancel()

        run = stream.until_done(on_run_step_delta=on_step_delta, env={})
        steps = client.steps.list(thread.id, run.id).to_list()
    finally:
        client.close()
    assert run.status == "cancelled"
    [step] = steps
    assert (step.type, step.status) == ("reasoning", "cancelled")
    kept = step.step_details.reasoning["summary"]
    assert kept.startswith(" thought0 thought1 thought2") and "thought299" not in kept
