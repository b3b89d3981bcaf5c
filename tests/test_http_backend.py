"""The HTTP backend over real loopback HTTP: routes, headers, retries, typed errors, stream faults."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from jupyter_runs.backends import OPERATIONS, Backend
from jupyter_runs.backends.http import HTTPBackend, JSONResponse, retry_delay
from jupyter_runs.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    StreamError,
)
from jupyter_runs.wire import Event
from tests.fakes.assistants_replay import DROP, Pause, fixture_stream

KEY = "sk-test-0123456789abcdef-SECRET"
# a verbatim copy of the shared spec subset
SPEC = Path(__file__).resolve().parent / "fixtures" / "spec" / "assistants-subset.yaml"
EXTENSIONS = {"list_threads", "rewind_thread", "fork_thread"}  # ours, not in OpenAI's spec


@pytest.fixture
async def make_backend(replay):
    """HTTPBackend factory against the replay server; fast backoff; closed after the test."""
    made: list[HTTPBackend] = []

    def make(**kwargs) -> HTTPBackend:
        kwargs.setdefault("timeout", 5.0)
        backend = HTTPBackend(replay.url, kwargs.pop("api_key", KEY), **kwargs)
        backend.retry_base_delay = 0.01
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
    assert replay.errors == [], "the replay server saw requests its script did not expect"


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [e async for e in events]


async def collect_until_error(events: AsyncIterator[Event], error: type[Exception]):
    seen: list[Event] = []
    with pytest.raises(error) as info:
        async for event in events:
            seen.append(event)
    return seen, info.value


def no_key_in(err: BaseException) -> None:
    assert KEY not in str(err) and KEY not in repr(err)
    assert KEY not in str(getattr(err, "body", "")) and KEY not in str(err.args)


# -- routes and headers --------------------------------------------------------------------------


async def test_every_operation_sends_its_method_path_and_headers(replay, make_backend):
    backend = make_backend()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec_paths = yaml.load(SPEC.read_text(), Loader=loader)["paths"]
    for op in OPERATIONS.values():
        params = {name: f"{name}_1" for name in re.findall(r"{(\w+)}", op.path)}
        body = {"metadata": {"op": op.name}} if op.method == "POST" else None
        replay.reply({"id": "x", "object": "thing"})
        result = await backend.call(op.name, params, body=body)
        assert result == {"id": "x", "object": "thing"}
        req = replay.requests[-1]
        expected = re.sub(r"{(\w+)}", lambda m: f"{m.group(1)}_1", op.path)
        assert req.route == f"{op.method} {expected}", op.name
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert req.headers["openai-beta"] == "assistants=v2"
        assert req.headers["accept"] == "application/json"
        assert req.json == body, op.name
        if op.name not in EXTENSIONS:
            assert op.method.lower() in spec_paths[op.path], f"{op.name}: {op.method} {op.path} not in the spec"
        if op.streams:
            replay.stream(("thread.run.created", {"id": "run_1"}), ("done", "[DONE]"))
            events = await collect(backend.stream(op.name, params, body={"assistant_id": "a"}))
            assert [e.event for e in events] == ["thread.run.created", "done"]
            req = replay.requests[-1]
            assert req.route == f"{op.method} {expected}"
            assert req.json == {"assistant_id": "a", "stream": True}
            assert req.headers["accept"] == "text/event-stream"
    assert len(replay.requests) == len(OPERATIONS) + sum(op.streams for op in OPERATIONS.values())


async def test_path_parameters_are_quoted_and_query_values_encoded(replay, make_backend):
    backend = make_backend()
    replay.reply({"object": "list", "data": [], "has_more": False})
    await backend.call("list_messages", {"thread_id": "a/b c"},
                       query={"limit": 2, "order": "asc", "after": None, "include_deleted": True})
    req = replay.requests[-1]
    assert req.path == "/threads/a%2Fb%20c/messages"
    assert req.query == {"limit": "2", "order": "asc", "include_deleted": "true"}


async def test_list_query_values_repeat(replay, make_backend):
    backend = make_backend()
    replay.reply({"id": "step_1"})
    include = ["step_details.tool_calls[*].file_search.results[*].content"]
    await backend.call("retrieve_run_step", {"thread_id": "t", "run_id": "r", "step_id": "s"},
                       query={"include[]": include})
    assert replay.requests[-1].query == {"include[]": include[0]}


async def test_bad_calls_fail_before_any_request(replay, make_backend):
    backend = make_backend()
    with pytest.raises(ValueError, match="unknown Assistants operation 'nope'"):
        await backend.call("nope")
    with pytest.raises(ValueError, match="needs the path parameter 'thread_id'"):
        await backend.call("retrieve_thread", {})
    with pytest.raises(ValueError, match="does not stream"):
        await collect(backend.stream("create_thread"))
    assert replay.requests == []


async def test_default_headers_are_sent_and_no_key_means_no_authorization(replay, make_backend):
    backend = make_backend(api_key=None, default_headers={"X-Team": "notebooks"})
    replay.reply({"id": "t"})
    await backend.call("retrieve_thread", {"thread_id": "t"})
    req = replay.requests[-1]
    assert req.headers["x-team"] == "notebooks"
    assert "authorization" not in req.headers


async def test_http_client_factory_makes_each_loops_client(replay, make_backend):
    made = []

    def factory() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient(headers={"X-Proxy-Tag": "lab"}))
        return made[-1]

    backend = make_backend(http_client_factory=factory)
    assert isinstance(backend, Backend)
    replay.reply({"id": "t"}).reply({"id": "t"})
    await backend.call("retrieve_thread", {"thread_id": "t"})
    await backend.call("retrieve_thread", {"thread_id": "t"})
    assert len(made) == 1  # one per loop, reused
    assert [r.headers["x-proxy-tag"] for r in replay.requests] == ["lab", "lab"]
    assert replay.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_response_is_a_dict_carrying_its_headers(replay, make_backend):
    backend = make_backend()
    replay.reply({"id": "run_1", "status": "queued"}, headers={"openai-poll-after-ms": "250"})
    result = await backend.call("retrieve_run", {"thread_id": "t", "run_id": "run_1"})
    assert isinstance(result, JSONResponse) and isinstance(result, dict)
    assert result["status"] == "queued"
    assert result.headers["OpenAI-Poll-After-Ms"] == "250"
    assert backend.poll_interval == 1.0


# -- retries -------------------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after_seconds(replay, make_backend):
    backend = make_backend()
    replay.error(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "1"})
    replay.reply({"id": "t"})
    assert await backend.call("retrieve_thread", {"thread_id": "t"}) == {"id": "t"}
    first, second = replay.requests
    assert second.at - first.at >= 0.99  # the server's own clock: the client waited as asked


async def test_retry_after_ms_is_honoured(replay, make_backend):
    backend = make_backend()
    backend.retry_base_delay = 5.0  # would be far longer than the server's hint
    replay.error(503, "busy", headers={"retry-after-ms": "150"})
    replay.reply({"id": "t"})
    await backend.call("retrieve_thread", {"thread_id": "t"})
    first, second = replay.requests
    assert second.at - first.at >= 0.149


async def test_500_twice_then_success(replay, make_backend):
    backend = make_backend()
    replay.error(500, "oops 1", type="server_error").error(500, "oops 2", type="server_error")
    replay.reply({"id": "asst_1", "object": "assistant"})
    assert (await backend.call("retrieve_assistant", {"assistant_id": "asst_1"}))["id"] == "asst_1"
    assert len(replay.requests) == 3
    assert {r.route for r in replay.requests} == {"GET /assistants/asst_1"}


async def test_third_500_is_an_internal_server_error_with_the_body_message(replay, make_backend):
    backend = make_backend()
    for n in range(3):
        replay.error(500, f"The server had an error ({n})", code="server_error", type="server_error",
                     headers={"x-request-id": f"req_{n}"})
    with pytest.raises(InternalServerError) as info:
        await backend.call("retrieve_assistant", {"assistant_id": "asst_1"})
    err = info.value
    assert err.message == "The server had an error (2)"
    assert (err.status, err.code, err.type, err.request_id) == (500, "server_error", "server_error", "req_2")
    assert "req_2" in str(err)
    assert len(replay.requests) == 3  # one try + max_retries=2


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(replay, make_backend, status):
    backend = make_backend(max_retries=1)
    replay.error(status, "try again").reply({"id": "t"})
    assert await backend.call("retrieve_thread", {"thread_id": "t"}) == {"id": "t"}
    assert len(replay.requests) == 2


@pytest.mark.parametrize(("status", "error"), [(400, BadRequestError), (404, NotFoundError), (422, APIError)])
async def test_client_errors_are_not_retried(replay, make_backend, status, error):
    backend = make_backend()
    replay.error(status, "no such thread: t", code="not_found", headers={"x-request-id": "req_9"})
    with pytest.raises(error) as info:
        await backend.call("retrieve_thread", {"thread_id": "t"})
    assert info.value.status == status and info.value.message == "no such thread: t"
    assert info.value.request_id == "req_9"
    assert len(replay.requests) == 1


async def test_server_can_veto_or_force_a_retry(replay, make_backend):
    backend = make_backend()
    replay.error(503, "down for good", headers={"x-should-retry": "false"})
    with pytest.raises(InternalServerError):
        await backend.call("retrieve_thread", {"thread_id": "t"})
    assert len(replay.requests) == 1
    replay.error(400, "flaky", headers={"x-should-retry": "true"}).reply({"id": "t"})
    assert await backend.call("retrieve_thread", {"thread_id": "t"}) == {"id": "t"}
    assert len(replay.requests) == 3


async def test_max_retries_is_configurable(replay, make_backend):
    backend = make_backend(max_retries=0)
    replay.error(429, "slow down", headers={"retry-after-ms": "1"})
    with pytest.raises(RateLimitError):
        await backend.call("retrieve_thread", {"thread_id": "t"})
    assert len(replay.requests) == 1


def test_retry_delay_rules():
    now = email.utils.format_datetime(email.utils.localtime().replace(microsecond=0), usegmt=False)
    assert retry_delay(httpx.Headers({"retry-after-ms": "250"}), 0, 0.5, 8) == 0.25
    assert retry_delay(httpx.Headers({"retry-after": "3"}), 0, 0.5, 8) == 3.0
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_delay(httpx.Headers({"retry-after": in_30s}), 0, 0.5, 8) <= 30
    assert retry_delay(httpx.Headers({"retry-after": now}), 0, 0.5, 8) <= 1
    # no usable hint (absent, absurd, garbage): exponential backoff with up to 25% jitter, capped
    for headers in (None, httpx.Headers({"retry-after": "3600"}), httpx.Headers({"retry-after": "soon"})):
        assert 0.375 <= retry_delay(headers, 0, 0.5, 8) <= 0.5
    assert 1.5 <= retry_delay(None, 2, 0.5, 8) <= 2.0
    assert 6.0 <= retry_delay(None, 10, 0.5, 8) <= 8.0


# -- errors and secrets --------------------------------------------------------------------------


async def test_401_is_an_authentication_error_that_never_shows_the_key(replay, make_backend, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make_backend()
    replay.error(401, f"Incorrect API key provided: {KEY}.", code="invalid_api_key", type="invalid_request_error")
    with pytest.raises(AuthenticationError) as info:
        await backend.call("list_assistants")
    err = info.value
    assert err.status == 401 and err.code == "invalid_api_key"
    assert "Incorrect API key provided: ***" in str(err)
    no_key_in(err)
    assert KEY not in repr(backend) and "api_key=set" in repr(backend)
    assert len(replay.requests) == 1
    assert replay.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent, just never shown
    assert KEY not in caplog.text


async def test_key_echoed_in_an_error_event_is_masked(replay, make_backend):
    backend = make_backend()
    replay.stream(("error", {"error": {"message": f"bad key {KEY}", "code": "invalid_api_key"}}))
    _, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), StreamError)
    assert err.message == "bad key ***" and err.code == "invalid_api_key"
    no_key_in(err)
    assert KEY not in repr(err.data)


async def test_plain_string_error_body_gives_its_message(replay, make_backend):
    backend = make_backend()
    replay.reply({"error": "Not Found"}, status=404)
    with pytest.raises(NotFoundError, match="^Not Found"):
        await backend.call("retrieve_thread", {"thread_id": "t"})


async def test_retries_are_logged_without_the_key(replay, make_backend, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make_backend()
    replay.error(429, "slow down", headers={"retry-after-ms": "1"}).reply({"id": "t"})
    await backend.call("retrieve_thread", {"thread_id": "t"})
    retries = [r for r in caplog.records if r.name == "jupyter_runs.http"]
    assert len(retries) == 1 and "HTTP 429" in retries[0].getMessage()
    assert KEY not in caplog.text


async def test_connection_refused_is_a_connection_error(make_backend):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    backend = HTTPBackend(f"http://127.0.0.1:{port}/v1", KEY, max_retries=1, timeout=5)
    backend.retry_base_delay = 0.01
    try:
        with pytest.raises(APIConnectionError) as info:
            await backend.call("retrieve_thread", {"thread_id": "t"})
    finally:
        await backend.aclose()
    assert not isinstance(info.value, APITimeoutError)
    assert "after 2 attempt(s)" in str(info.value) and "ConnectError" in str(info.value)
    no_key_in(info.value)


async def test_call_silent_past_the_read_timeout_is_a_timeout_error(replay, make_backend):
    backend = make_backend(timeout=0.5, max_retries=1)
    replay.reply({"id": "t"}, before=3).reply({"id": "t"}, before=3)
    with pytest.raises(APITimeoutError, match="timed out after 2 attempt"):
        await backend.call("retrieve_thread", {"thread_id": "t"})
    assert len(replay.requests) == 2


async def test_a_body_that_is_not_json_is_a_clear_error(replay, make_backend):
    backend = make_backend()
    replay.stream(b"<html>proxy says hi</html>", headers={"content-type": "text/html"})
    with pytest.raises(APIError, match="not JSON: '<html>proxy says hi</html>'"):
        await backend.call("retrieve_thread", {"thread_id": "t"})


# -- streams -------------------------------------------------------------------------------------


async def test_stream_yields_every_event_then_ends_after_done(replay, make_backend):
    backend = make_backend()
    replay.stream(fixture_stream("createRun.streaming") + b"\n\nevent: after\ndata: {}\n\n")
    events = await collect(backend.stream("create_run", {"thread_id": "thread_123"}, body={"assistant_id": "asst_123"}))
    assert events[0].event == "thread.run.created" and events[0].data["id"] == "run_123"
    assert events[-1] == Event("done", "[DONE]")
    assert len(events) == 14


async def test_stream_in_small_chunks_with_pauses(replay, make_backend):
    backend = make_backend()
    body = fixture_stream("submitToolOutputs.streaming")
    parts = []
    for i in range(0, len(body), 512):
        parts += [body[i : i + 512], Pause(0.001)]
    replay.stream(*parts)
    events = await collect(backend.stream("submit_tool_outputs", {"thread_id": "t", "run_id": "r"},
                                          body={"tool_outputs": []}))
    assert [e.event for e in events][-2:] == ["thread.run.completed", "done"]


async def test_connection_dropped_mid_stream(replay, make_backend):
    backend = make_backend()
    replay.stream(("thread.run.created", {"id": "run_1"}), ("thread.run.in_progress", {"id": "run_1"}), DROP)
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), APIConnectionError)
    assert [e.event for e in seen] == ["thread.run.created", "thread.run.in_progress"]
    assert "stream ended early" in str(err) and "after 2 event(s)" in str(err)
    assert not isinstance(err, APITimeoutError)
    assert len(replay.requests) == 1  # events were handed on: never retried


async def test_stream_closed_without_done_ended_early(replay, make_backend):
    backend = make_backend()
    replay.stream(("thread.run.created", {"id": "run_1"}))
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), APIConnectionError)
    assert len(seen) == 1
    assert "ended early" in str(err) and "without a 'done' event" in str(err)


async def test_malformed_sse_line_is_a_stream_error(replay, make_backend):
    backend = make_backend()
    replay.stream(("thread.run.created", {"id": "run_1"}),
                  b'event: thread.run.completed\n{"id":"run_1","status":"completed"}\n\n', ("done", "[DONE]"))
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), StreamError)
    assert [e.event for e in seen] == ["thread.run.created"]
    assert "malformed SSE line" in str(err) and "thread.run.completed" in str(err)


async def test_invalid_json_in_data_is_a_stream_error(replay, make_backend):
    backend = make_backend()
    replay.stream(b'event: thread.run.queued\ndata: {"id":"run_1"}}\n\n')
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), StreamError)
    assert seen == []
    assert err.event == "thread.run.queued" and "invalid JSON" in str(err)


async def test_unknown_event_name_is_passed_on(replay, make_backend):
    backend = make_backend()
    replay.stream(("thread.run.created", {"id": "r"}), ("thread.run.heartbeat", {"n": 1}), ("done", "[DONE]"))
    events = await collect(backend.stream("create_run", {"thread_id": "t"}))
    assert events[1] == Event("thread.run.heartbeat", {"n": 1})


@pytest.mark.parametrize(
    "data",
    [{"error": {"message": "Model overloaded", "code": "server_error", "type": "server_error"}},
     {"code": "server_error", "message": "Model overloaded"}],
    ids=["wrapped", "bare"],
)
async def test_error_event_raises_a_typed_error(replay, make_backend, data):
    backend = make_backend()
    replay.stream(("thread.run.created", {"id": "r"}), ("error", data), ("done", "[DONE]"))
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), StreamError)
    assert len(seen) == 1
    assert err.message == "Model overloaded" and err.code == "server_error"


async def test_stream_silent_past_the_read_timeout(replay, make_backend):
    backend = make_backend(timeout=0.5)
    replay.stream(("thread.run.created", {"id": "r"}), Pause(5), ("done", "[DONE]"))
    seen, err = await collect_until_error(backend.stream("create_run", {"thread_id": "t"}), APITimeoutError)
    assert len(seen) == 1
    assert "silent for more than 0.5s after 1 event(s)" in str(err)
    assert len(replay.requests) == 1


async def test_stream_silent_before_its_first_byte_is_retried(replay, make_backend):
    backend = make_backend(timeout=0.5)
    replay.stream(Pause(5), ("thread.run.created", {"id": "r"}))
    replay.stream(("thread.run.created", {"id": "r"}), ("done", "[DONE]"))
    events = await collect(backend.stream("create_run", {"thread_id": "t"}))
    assert [e.event for e in events] == ["thread.run.created", "done"]
    assert len(replay.requests) == 2


async def test_stream_request_answered_429_is_retried(replay, make_backend):
    backend = make_backend()
    replay.error(429, "slow down", headers={"retry-after-ms": "10"})
    replay.stream(("thread.run.created", {"id": "r"}), ("done", "[DONE]"))
    events = await collect(backend.stream("create_run", {"thread_id": "t"}))
    assert len(events) == 2 and len(replay.requests) == 2


async def test_stream_request_answered_404_is_not_found(replay, make_backend):
    backend = make_backend()
    replay.error(404, "No thread found with id 't'.")
    with pytest.raises(NotFoundError, match="No thread found"):
        await collect(backend.stream("create_run", {"thread_id": "t"}))


async def test_stream_answered_with_json_is_a_stream_error(replay, make_backend):
    backend = make_backend()
    replay.reply({"id": "run_1", "object": "thread.run"})
    with pytest.raises(StreamError, match="expected an event stream, got application/json"):
        await collect(backend.stream("create_run", {"thread_id": "t"}))


async def test_abandoned_stream_releases_its_connection(replay, make_backend):
    backend = make_backend(timeout=1)
    replay.stream(("thread.run.created", {"id": "r"}), Pause(5), ("done", "[DONE]"))
    events = backend.stream("create_run", {"thread_id": "t"})
    first = await anext(events)
    await events.aclose()
    assert first.event == "thread.run.created"
    replay.reply({"id": "t"})  # the pool still works after the abandoned stream
    assert await backend.call("retrieve_thread", {"thread_id": "t"}) == {"id": "t"}


# -- event loops ---------------------------------------------------------------------------------


async def test_one_client_per_event_loop(replay, make_backend):
    backend = make_backend()
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        def on_other(coro_factory):
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro_factory(), other))

        async def use() -> tuple[dict, httpx.AsyncClient]:
            replay.reply({"id": "t"})
            return await backend.call("retrieve_thread", {"thread_id": "t"}), backend._client()

        here = await use()
        there = await on_other(use)
        again = await use()
        assert here[0] == there[0] == again[0] == {"id": "t"}
        assert here[1] is again[1]  # reused on this loop
        assert here[1] is not there[1]  # a different loop gets its own client
        await backend.aclose()  # closes both, the other on its own loop
        assert here[1].is_closed and there[1].is_closed
        replay.reply({"id": "t"})
        assert await on_other(use) is not None  # a closed client is replaced on next use
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()
    assert len(replay.requests) == 4


# -- driven by the sync portal: chunks are decoded on the consumer's thread -------------------------


def _sync_events(backend: HTTPBackend, source=None) -> tuple[list[Event], Exception | None]:
    from jupyter_runs import _portal

    seen: list[Event] = []
    try:
        for event in _portal.iterate(source or (lambda: backend.stream("create_run", {"thread_id": "t"}))):
            seen.append(event)
    except Exception as exc:
        return seen, exc
    return seen, None


def test_sync_stream_gives_the_same_events_and_stops_at_done(replay):
    parts = [("thread.run.created", {"id": "run_1"}),
             b'event: thread.message.delta\ndata: {"id":"m","delta":{"content":[{"index":0,"type":"text","text":{"value":"a',
             b'b"}}]}}\n\nevent: thread.run.completed\ndata: {"id":"run_1"}\n\n',
             ("done", "[DONE]"), b"event: late\ndata: {}\n\n"]
    replay.stream(*parts)
    replay.stream(*parts)
    backend = HTTPBackend(replay.url, KEY, max_retries=0, timeout=5.0)

    async def collect():
        return [e async for e in backend.stream("create_run", {"thread_id": "t"})]

    expected = asyncio.run(collect())
    seen, error = _sync_events(backend)
    assert error is None
    assert seen == expected
    assert [e.event for e in seen] == ["thread.run.created", "thread.message.delta", "thread.run.completed", "done"]
    assert seen[1].data["delta"]["content"][0]["text"]["value"] == "ab"


def test_sync_stream_errors_come_after_the_events_before_them(replay):
    backend = HTTPBackend(replay.url, KEY, max_retries=0, timeout=5.0)
    replay.stream(("thread.run.created", {"id": "run_1"}), b'event: thread.run.queued\ndata: {"id": "' +
                  KEY.encode() + b'"}}\n\n')
    seen, error = _sync_events(backend)
    assert [e.event for e in seen] == ["thread.run.created"]
    assert isinstance(error, StreamError) and "invalid JSON" in str(error) and KEY not in str(error)

    replay.stream(("thread.run.created", {"id": "run_1"}), ("thread.run.in_progress", {"id": "run_1"}), DROP)
    seen, error = _sync_events(backend)
    assert len(seen) == 2
    assert isinstance(error, APIConnectionError) and "after 2 event(s)" in str(error)

    replay.stream(("thread.run.created", {"id": "run_1"}))
    seen, error = _sync_events(backend)
    assert len(seen) == 1
    assert isinstance(error, APIConnectionError) and "without a 'done' event" in str(error)


def test_a_backend_wrapping_the_stream_still_gets_events(replay):
    backend = HTTPBackend(replay.url, KEY, max_retries=0, timeout=5.0)
    replay.stream(("thread.run.created", {"id": "run_1"}), ("done", "[DONE]"))

    async def wrapped():
        async for event in backend.stream("create_run", {"thread_id": "t"}):
            assert isinstance(event, Event)
            yield Event(event.event, {"wrapped": True})

    seen, error = _sync_events(backend, wrapped)
    assert error is None
    assert [(e.event, e.data) for e in seen] == [("thread.run.created", {"wrapped": True}), ("done", {"wrapped": True})]
