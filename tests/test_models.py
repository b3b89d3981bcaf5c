"""The Chat Completions adapter against a fake Chat Completions server on a loopback port: what it
asks for, what events come out, how failures map to ``ModelError`` codes; then the engine driving
it end to end through ``LocalBackend``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jupyter_runs.backends.local.models import (
    ChatCompletionsModel,
    Finish,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
    resolve_model,
)
from jupyter_runs.errors import ModelError
from tests.fakes.chat_server import (
    FakeChatServer,
    Reply,
    chunk,
    error_reply,
    text_reply,
    tool_calls_reply,
    usage_chunk,
)

SECRET = "sk-test-5ecret-never-shown"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


def model(server: FakeChatServer, **options: Any) -> ChatCompletionsModel:
    options.setdefault("retry_backoff", 0.001)
    return ChatCompletionsModel.for_provider(
        "compat", base_url=server.base_url, api_key=SECRET, name="fake", **options
    )


def request(**fields: Any) -> ModelRequest:
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ModelRequest(model="fake", **fields)


async def collect(adapter: ChatCompletionsModel, req: ModelRequest) -> list[Any]:
    try:
        return [event async for event in adapter.stream(req)]
    finally:
        await adapter.aclose()


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# -- what is sent -----------------------------------------------------------------------------

async def test_text_reply_streams_deltas_then_usage_then_finish(chat_server):
    chat_server.add(text_reply("Hello", ", ", "world", usage=(12, 4)))
    events = await collect(model(chat_server), request())
    assert events == [TextDelta("Hello"), TextDelta(", "), TextDelta("world"),
                      Usage(12, 4), Finish("stop")]
    [sent] = chat_server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.body["model"] == "fake"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert "tools" not in sent.body


async def test_request_carries_tools_sampling_limits_and_format(chat_server):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    req = request(tools=TOOLS, tool_choice="required", parallel_tool_calls=False, temperature=0.2,
                  top_p=0.9, max_tokens=64, response_format=fmt)
    await collect(model(chat_server), req)
    body = chat_server.requests[0].body
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    # compat servers get both names of the limit; older ones only know max_tokens
    assert (body["max_completion_tokens"], body["max_tokens"]) == (64, 64)
    assert body["response_format"] == fmt


async def test_openai_gets_only_max_completion_tokens_and_no_tool_options_without_tools(chat_server):
    adapter = ChatCompletionsModel.for_provider("openai", base_url=chat_server.base_url,
                                                api_key=SECRET, name="gpt-test")
    await collect(adapter, request(tool_choice="auto", parallel_tool_calls=True, max_tokens=9,
                                   response_format="auto"))
    body = chat_server.requests[0].body
    assert body["max_completion_tokens"] == 9
    assert "max_tokens" not in body
    # OpenAI refuses tool_choice / parallel_tool_calls when no tools are given
    assert not {"tool_choice", "parallel_tool_calls", "response_format"} & body.keys()


# -- tool calls -------------------------------------------------------------------------------

async def test_single_tool_call_streams_id_and_name_once_then_arguments(chat_server):
    chat_server.add(tool_calls_reply([("call_1", "get_weather", '{"city": "Oslo"}')], split=3))
    events = await collect(model(chat_server), request(tools=TOOLS))
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0] == ToolCallDelta(0, id="call_1", name="get_weather", arguments=calls[0].arguments)
    assert all(c.index == 0 and c.id is None and c.name is None for c in calls[1:])
    assert "".join(c.arguments for c in calls) == '{"city": "Oslo"}'
    assert events[-2:] == [Usage(11, 5), Finish("tool_calls")]


def assembled(events: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            call = calls.setdefault(e.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = e.id or call["id"]
            call["name"] = e.name or call["name"]
            call["arguments"] += e.arguments
    return calls


PARALLEL = [("call_a", "get_weather", '{"city": "Oslo"}'), ("call_b", "get_time", '{"tz": "CET"}'),
            ("call_c", "get_weather", '{"city": "Rome"}')]


async def test_parallel_tool_calls_keep_their_own_indexes(chat_server):
    chat_server.add(tool_calls_reply(PARALLEL))
    events = await collect(model(chat_server), request(tools=TOOLS))
    assert assembled(events) == {
        k: {"id": i, "name": n, "arguments": a} for k, (i, n, a) in enumerate(PARALLEL)
    }


async def test_calls_all_sent_at_index_zero_are_told_apart_by_id(chat_server):
    chat_server.add(tool_calls_reply(PARALLEL, index_zero=True))
    events = await collect(model(chat_server), request(tools=TOOLS))
    assert [c.index for c in events if isinstance(c, ToolCallDelta) and c.id] == [0, 1, 2]
    assert assembled(events) == {
        k: {"id": i, "name": n, "arguments": a} for k, (i, n, a) in enumerate(PARALLEL)
    }


async def test_tool_call_without_id_gets_one_and_stop_after_calls_means_tool_calls(chat_server):
    chat_server.add(Reply([
        chunk({"tool_calls": [{"index": 0, "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({}, "stop"),
    ]))
    events = await collect(model(chat_server), request(tools=TOOLS))
    assert events[0].id and events[0].id.startswith("call_")
    assert events[-1] == Finish("tool_calls")


@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_finish_reasons_pass_through(chat_server, reason):
    chat_server.add(text_reply("cut", finish=reason, usage=None))
    events = await collect(model(chat_server), request())
    assert events == [TextDelta("cut"), Finish(reason)]


async def test_stream_ending_without_finish_reason_is_a_server_error(chat_server):
    chat_server.add(Reply([chunk({"content": "half"}), usage_chunk(1, 1)], end="eof"))
    with pytest.raises(ModelError) as info:
        await collect(model(chat_server), request())
    assert info.value.code == "server_error"
    assert "ended before the model finished" in info.value.message


# -- failures ---------------------------------------------------------------------------------

async def test_rate_limit_then_success_is_retried_before_the_first_token(chat_server):
    chat_server.add(error_reply(429, "Rate limit reached", type="requests",
                                headers={"retry-after-ms": "1"}),
                    text_reply("after", " waiting"))
    events = await collect(model(chat_server), request())
    assert text_of(events) == "after waiting"
    assert len(chat_server.requests) == 2


async def test_rate_limit_that_persists_is_rate_limit_exceeded_and_logs_no_key(chat_server, caplog):
    chat_server.add(*[error_reply(429, f"Rate limit reached for key {SECRET}", type="requests")] * 3)
    with caplog.at_level("WARNING", logger="jupyter_runs.models"), pytest.raises(ModelError) as info:
        await collect(model(chat_server, max_retries=2), request())
    assert info.value.code == "rate_limit_exceeded"
    assert "429" in info.value.message and "Rate limit reached" in info.value.message
    assert len(chat_server.requests) == 3
    assert "retry 1 of 2" in caplog.text and "retry 2 of 2" in caplog.text
    assert SECRET not in caplog.text and SECRET not in info.value.message


async def test_server_error_before_the_first_token_is_retried(chat_server):
    chat_server.add(error_reply(503, "overloaded"), text_reply("fine"))
    events = await collect(model(chat_server), request())
    assert text_of(events) == "fine"
    assert len(chat_server.requests) == 2


async def test_error_chunk_mid_stream_fails_with_server_error_and_no_retry(chat_server):
    reply = text_reply("partial", " answer")
    reply.chunks.insert(2, {"error": {"message": "The server had an error", "type": "server_error"}})
    chat_server.add(reply)
    seen: list[Any] = []
    with pytest.raises(ModelError) as info:
        async for event in model(chat_server).stream(request()):
            seen.append(event)
    assert info.value.code == "server_error"
    assert "mid-stream" in info.value.message and "The server had an error" in info.value.message
    assert seen == [TextDelta("partial")]
    assert len(chat_server.requests) == 1  # text already went out: replaying would duplicate it


async def test_dropped_connection_mid_stream_is_a_readable_server_error(chat_server):
    reply = text_reply("so far", " so good")
    reply.chunks = reply.chunks[:2]
    reply.end = "drop"
    chat_server.add(reply)
    with pytest.raises(ModelError) as info:
        await collect(model(chat_server), request())
    assert info.value.code == "server_error"
    assert "connection broke mid-reply" in info.value.message
    assert chat_server.outcomes == ["dropped"]
    assert len(chat_server.requests) == 1


async def test_bad_request_is_invalid_prompt_and_not_retried(chat_server):
    chat_server.add(error_reply(400, "messages: too long", type="invalid_request_error"))
    with pytest.raises(ModelError) as info:
        await collect(model(chat_server), request())
    assert info.value.code == "invalid_prompt"
    assert "messages: too long" in info.value.message
    assert len(chat_server.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_says_so_without_showing_it(chat_server, status):
    # a careless server echoes the key back; it must not get through
    chat_server.add(error_reply(status, f"Incorrect API key provided: {SECRET}",
                                type="invalid_request_error"))
    adapter = model(chat_server)
    with pytest.raises(ModelError) as info:
        await collect(adapter, request())
    err = info.value
    assert err.code == "server_error"
    assert "rejected the API key" in err.message
    for text in (str(err), repr(err), err.message, repr(adapter)):
        assert SECRET not in text
    assert len(chat_server.requests) == 1


async def test_unreachable_server_is_retried_then_server_error():
    closed = FakeChatServer().start()
    url = closed.base_url
    closed.stop()  # nothing listens on that port any more
    adapter = ChatCompletionsModel.for_provider("compat", base_url=url, name="gone",
                                                max_retries=1, retry_backoff=0.001)
    with pytest.raises(ModelError) as info:
        await collect(adapter, request())
    assert info.value.code == "server_error"
    assert "could not reach" in info.value.message and url in info.value.message


async def test_closing_the_stream_early_closes_the_connection(chat_server):
    chat_server.add(Reply([chunk({"content": f"w{i} "}) for i in range(200)], delay=0.01))
    adapter = model(chat_server)
    stream = adapter.stream(request())
    first = await anext(stream)
    await stream.aclose()  # what the engine does on cancel
    await adapter.aclose()
    for _ in range(200):
        if chat_server.outcomes:
            break
        await asyncio.sleep(0.01)
    assert first == TextDelta("w0 ")
    assert chat_server.outcomes == ["client closed"]


# -- configuration ----------------------------------------------------------------------------

def test_openai_reads_key_and_base_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    adapter = resolve_model("openai:gpt-4.1-mini")
    assert isinstance(adapter, ChatCompletionsModel)
    assert adapter.base_url == "http://127.0.0.1:9/v1"
    assert adapter._headers()["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(adapter)


def test_openai_without_a_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-4.1-mini")


def test_ollama_defaults_to_the_local_server_and_sends_no_key(monkeypatch):
    monkeypatch.delenv("OLLAMA_BASE_URL", raising=False)
    adapter = resolve_model("ollama:llama3.2")
    assert adapter.base_url == "http://127.0.0.1:11434/v1"
    assert "authorization" not in adapter._headers()
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://10.0.0.5:11434/v1")
    assert resolve_model("ollama:llama3.2").base_url == "http://10.0.0.5:11434/v1"
    assert resolve_model("ollama:x", base_url="http://h:1/v1").base_url == "http://h:1/v1"


def test_compat_needs_an_explicit_base_url(monkeypatch):
    monkeypatch.delenv("JUPYTER_RUNS_COMPAT_BASE_URL", raising=False)
    with pytest.raises(ModelError) as info:
        resolve_model("compat:qwen")
    assert info.value.code == "invalid_prompt" and "base_url" in info.value.message
    monkeypatch.setenv("JUPYTER_RUNS_COMPAT_BASE_URL", "http://127.0.0.1:8000/v1")
    assert resolve_model("compat:qwen").base_url == "http://127.0.0.1:8000/v1"
    with pytest.raises(ModelError, match="http:// or https://"):
        resolve_model("compat:qwen", base_url="127.0.0.1:8000")


def test_unknown_model_config_is_named():
    with pytest.raises(ModelError, match="'temprature'") as info:
        resolve_model("ollama:llama3.2", temprature=0.1)
    assert info.value.code == "invalid_prompt"


# -- the engine driving the adapter -----------------------------------------------------------

@pytest.fixture
def engine_client(chat_server):
    """The embedded engine with ``compat:`` models pointed at the fake server."""
    import jupyter_runs as jr

    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url,
                                                       "api_key": SECRET, "retry_backoff": 0.001})
    try:
        yield client
    finally:
        client.close()


def start(client: Any, text: str = "Hi", **assistant: Any) -> tuple[Any, Any]:
    asst = client.assistants.create(model="compat:fake", instructions="Be brief.", **assistant)
    thread = client.threads.create(messages=[{"role": "user", "content": text}])
    return asst, thread


def test_engine_streams_a_reply_from_the_chat_server(engine_client, chat_server):
    chat_server.add(text_reply("Hello", " there."))
    asst, thread = start(engine_client)
    run = engine_client.runs.create(thread.id, assistant_id=asst.id, stream=True,
                                    max_completion_tokens=300, temperature=0.5).until_done(env={})
    assert run.status == "completed"
    assert run.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    [sent] = chat_server.requests
    assert sent.body["model"] == "fake"
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Hi"}]
    assert (sent.body["max_completion_tokens"], sent.body["temperature"]) == (300, 0.5)
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    reply = engine_client.messages.list(thread.id).to_list()[0]
    assert reply.text == "Hello there."


def test_engine_turns_index_zero_parallel_calls_into_separate_tool_calls(engine_client, chat_server):
    chat_server.add(tool_calls_reply(PARALLEL[:2], index_zero=True), text_reply("Both done."))
    asst, thread = start(engine_client, tools=TOOLS)
    run = engine_client.runs.create(thread.id, assistant_id=asst.id)
    for _ in range(500):  # poll by hand: the tools here are dicts, with nothing to call
        run.retrieve()
        if run.status == "requires_action":
            break
        time.sleep(0.01)
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city": "Oslo"}'), ("call_b", "get_time", '{"tz": "CET"}')]
    run.submit_tool_outputs([{"tool_call_id": "call_a", "output": "sunny"},
                             {"tool_call_id": "call_b", "output": "noon"}])
    done = run.wait(env={}, timeout=30, poll_interval=0.01)
    assert done.status == "completed"
    tool_messages = chat_server.requests[1].body["messages"][-2:]
    assert tool_messages == [{"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                             {"role": "tool", "tool_call_id": "call_b", "content": "noon"}]


@pytest.mark.parametrize(("reply", "code"), [
    (error_reply(500, "upstream exploded"), "server_error"),
    (error_reply(429, "Rate limit reached", type="requests"), "rate_limit_exceeded"),
    (error_reply(400, "context too long", type="invalid_request_error"), "invalid_prompt"),
])
def test_engine_fails_the_run_with_the_model_error_code(engine_client, chat_server, reply, code):
    chat_server.add(*[reply] * 3)
    asst, thread = start(engine_client)
    run = engine_client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env={})
    assert run.status == "failed"
    assert run.last_error.code == code
    assert reply.error["message"] in run.last_error.message


def test_engine_cancel_closes_the_model_connection(engine_client, chat_server):
    chat_server.add(Reply([chunk({"content": f"w{i} "}) for i in range(300)], delay=0.01))
    asst, thread = start(engine_client)
    stream = engine_client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    seen: list[str] = []

    def on_delta(delta: Any) -> None:
        seen.append(delta.delta.content[0].text.value)
        if len(seen) == 2:
            stream.cancel()

    run = stream.until_done(on_message_delta=on_delta, env={})
    assert run.status == "cancelled"
    for _ in range(300):
        if chat_server.outcomes:
            break
        time.sleep(0.01)
    assert chat_server.outcomes == ["client closed"]
    reply = engine_client.messages.list(thread.id).to_list()[0]
    assert reply.status == "incomplete" and reply.text.startswith("w0 w1 ")
