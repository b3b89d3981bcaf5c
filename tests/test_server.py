"""The served engine on a real loopback port, driven with raw httpx: every endpoint, error bodies
and statuses, pagination, SSE, auth, CORS, and every object and event checked against the spec
subset's schemas."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from jupyter_runs.errors import InternalServerError, NotFoundError
from jupyter_runs.server import create_app
from jupyter_runs.sse import decode
from jupyter_runs.wire import TERMINAL_STATUSES, Event
from tests.openapi_spec import validate, validate_event
from tests.served import ServedEngine, ServerProcess

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


@pytest.fixture
def api(served: ServedEngine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=30) as client:
        yield client


def ok(response: httpx.Response, schema: str) -> dict[str, Any]:
    """A 200 JSON response whose body fits ``schema``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validate(schema, body)
    return body


def failed(response: httpx.Response, status: int) -> dict[str, Any]:
    """An error response with ``status`` and the API's error body."""
    assert response.status_code == status, response.text
    body = response.json()
    validate("ErrorResponse", body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def events_of(response: httpx.Response) -> list[Event]:
    """The SSE events of a streamed response, each validated; the stream ends with done."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("event: done\ndata: [DONE]\n\n")
    events = decode(response.content)
    for event in events:
        validate_event(event.event, event.data)
    assert events[-1] == Event("done", "[DONE]")
    return events


def assistant(api: httpx.Client, model: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("instructions", "Be brief.")
    return ok(api.post("/assistants", json={"model": model, **fields}), "AssistantObject")


def thread_with(api: httpx.Client, text: str = "What's the weather in Oslo?") -> dict[str, Any]:
    return ok(api.post("/threads", json={"messages": [{"role": "user", "content": text}]}),
              "ThreadObject")


def poll(api: httpx.Client, thread_id: str, run_id: str, until: Callable[[dict[str, Any]], bool]
         ) -> dict[str, Any]:
    for _ in range(2000):
        run = ok(api.get(f"/threads/{thread_id}/runs/{run_id}"), "RunObject")
        if until(run):
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} stuck in {run['status']}")


def terminal(run: dict[str, Any]) -> bool:
    return run["status"] in TERMINAL_STATUSES


# -- objects ----------------------------------------------------------------------------------

def test_assistant_crud(api, script):
    model = script([{"text": "hi"}])
    created = assistant(api, model, name="Helper", tools=[WEATHER], metadata={"team": "a"})
    assert created["id"].startswith("asst_") and created["tools"] == [WEATHER]
    path = f"/assistants/{created['id']}"
    assert ok(api.get(path), "AssistantObject") == created
    modified = ok(api.post(path, json={"name": "Renamed"}), "AssistantObject")
    assert modified["name"] == "Renamed" and modified["metadata"] == {"team": "a"}
    page = ok(api.get("/assistants"), "ListAssistantsResponse")
    assert [a["id"] for a in page["data"]] == [created["id"]]
    deleted = ok(api.delete(path), "DeleteAssistantResponse")
    assert deleted == {"id": created["id"], "object": "assistant.deleted", "deleted": True}
    assert "No assistant found" in failed(api.get(path), 404)["message"]


def test_thread_and_message_crud(api):
    thread = thread_with(api, "first")
    tpath = f"/threads/{thread['id']}"
    assert ok(api.get(tpath), "ThreadObject")["id"] == thread["id"]
    assert ok(api.post(tpath, json={"metadata": {"k": "v"}}), "ThreadObject")["metadata"] == {"k": "v"}
    message = ok(api.post(f"{tpath}/messages", json={"role": "user", "content": "second"}),
                 "MessageObject")
    assert message["content"][0]["text"]["value"] == "second"
    mpath = f"{tpath}/messages/{message['id']}"
    assert ok(api.get(mpath), "MessageObject")["id"] == message["id"]
    assert ok(api.post(mpath, json={"metadata": {"n": "1"}}), "MessageObject")["metadata"] == {"n": "1"}
    listed = ok(api.get(f"{tpath}/messages", params={"order": "asc"}), "ListMessagesResponse")
    assert [m["content"][0]["text"]["value"] for m in listed["data"]] == ["first", "second"]
    assert ok(api.delete(mpath), "DeleteMessageResponse")["deleted"] is True
    failed(api.get(mpath), 404)
    assert ok(api.delete(tpath), "DeleteThreadResponse")["deleted"] is True
    failed(api.get(tpath), 404)


def test_list_pagination_passes_limit_order_after_before(api, script):
    model = script([{"text": "hi"}])
    ids = [assistant(api, model, name=f"a{i}")["id"] for i in range(5)]
    first = ok(api.get("/assistants", params={"limit": 2, "order": "asc"}), "ListAssistantsResponse")
    assert [a["id"] for a in first["data"]] == ids[:2]
    assert first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == (ids[0], ids[1])
    rest = ok(api.get("/assistants", params={"limit": 10, "order": "asc", "after": ids[1]}),
              "ListAssistantsResponse")
    assert [a["id"] for a in rest["data"]] == ids[2:] and rest["has_more"] is False
    before = ok(api.get("/assistants", params={"order": "asc", "before": ids[3]}),
                "ListAssistantsResponse")
    assert [a["id"] for a in before["data"]] == ids[:3]
    newest = ok(api.get("/assistants", params={"limit": 1}), "ListAssistantsResponse")
    assert [a["id"] for a in newest["data"]] == [ids[-1]]  # desc by default
    assert failed(api.get("/assistants", params={"limit": 0}), 400)["param"] == "limit"
    assert failed(api.get("/assistants", params={"order": "sideways"}), 400)["param"] == "order"
    empty = ok(api.get(f"/threads/{thread_with(api)['id']}/runs"), "ListRunsResponse")
    assert empty["data"] == [] and empty["has_more"] is False


# -- runs -------------------------------------------------------------------------------------

def test_streamed_run_sends_spec_events_in_order(api, script):
    asst = assistant(api, script([{"text": "It is sunny in Oslo."}]))
    thread = thread_with(api)
    events = events_of(api.post(f"/threads/{thread['id']}/runs",
                                json={"assistant_id": asst["id"], "stream": True}))
    names = [e.event for e in events]
    assert names[:5] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress",
                         "thread.run.step.created", "thread.run.step.in_progress"]
    assert names[-4:] == ["thread.message.completed", "thread.run.step.completed",
                          "thread.run.completed", "done"]
    text = "".join(e.data["delta"]["content"][0]["text"]["value"]
                   for e in events if e.event == "thread.message.delta")
    assert text == "It is sunny in Oslo."
    run = events[-2].data
    assert run["status"] == "completed" and run["usage"]["completion_tokens"] > 0
    steps = ok(api.get(f"/threads/{thread['id']}/runs/{run['id']}/steps"), "ListRunStepsResponse")
    [step] = steps["data"]
    assert step["type"] == "message_creation"
    got = ok(api.get(f"/threads/{thread['id']}/runs/{run['id']}/steps/{step['id']}"),
             "RunStepObject")
    assert got == step
    runs = ok(api.get(f"/threads/{thread['id']}/runs"), "ListRunsResponse")
    assert [r["id"] for r in runs["data"]] == [run["id"]]
    by_run = ok(api.get(f"/threads/{thread['id']}/messages", params={"run_id": run["id"]}),
                "ListMessagesResponse")
    assert [m["role"] for m in by_run["data"]] == ["assistant"]


def test_tool_call_round_trip_with_streamed_submit(api, script):
    asst = assistant(api, script([
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                        {"name": "get_time", "arguments": {}}]},
        {"text": "Sunny, and it is noon."},
    ]), tools=[WEATHER, CLOCK])
    thread = thread_with(api)
    first = events_of(api.post(f"/threads/{thread['id']}/runs",
                               json={"assistant_id": asst["id"], "stream": True}))
    assert first[-2].event == "thread.run.requires_action"
    run = first[-2].data
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    outputs = [{"tool_call_id": c["id"], "output": f"result {k}"} for k, c in enumerate(calls)]
    second = events_of(api.post(
        f"/threads/{thread['id']}/runs/{run['id']}/submit_tool_outputs",
        json={"tool_outputs": outputs, "stream": True}))
    assert second[-2].event == "thread.run.completed"
    steps = ok(api.get(f"/threads/{thread['id']}/runs/{run['id']}/steps",
                       params={"order": "asc"}), "ListRunStepsResponse")
    tool_step = steps["data"][0]
    assert tool_step["type"] == "tool_calls"
    assert [c["function"]["output"] for c in tool_step["step_details"]["tool_calls"]] == [
        "result 0", "result 1"]


def test_polled_run_and_create_thread_and_run(api, script):
    asst = assistant(api, script([{"text": "Done."}]))
    started = ok(api.post("/threads/runs", json={
        "assistant_id": asst["id"],
        "thread": {"messages": [{"role": "user", "content": "go"}]}}), "RunObject")
    assert started["status"] in ("queued", "in_progress", "completed")
    run = poll(api, started["thread_id"], started["id"], terminal)
    assert run["status"] == "completed"
    messages = ok(api.get(f"/threads/{run['thread_id']}/messages"), "ListMessagesResponse")
    assert messages["data"][0]["content"][0]["text"]["value"] == "Done."
    modified = ok(api.post(f"/threads/{run['thread_id']}/runs/{run['id']}",
                           json={"metadata": {"tag": "x"}}), "RunObject")
    assert modified["metadata"] == {"tag": "x"}


def test_cancel_run_over_http(api, script):
    asst = assistant(api, script([{"text": " ".join(["word"] * 400)}], delay=0.01))
    thread = thread_with(api)
    run = ok(api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": asst["id"]}),
             "RunObject")
    poll(api, thread["id"], run["id"], lambda r: r["status"] == "in_progress")
    cancelling = ok(api.post(f"/threads/{thread['id']}/runs/{run['id']}/cancel"), "RunObject")
    assert cancelling["status"] in ("cancelling", "cancelled")
    assert poll(api, thread["id"], run["id"], terminal)["status"] == "cancelled"


def test_failed_model_call_is_a_failed_run_event(api, script):
    asst = assistant(api, script([{"error": {"code": "rate_limit_exceeded", "message": "slow down"}}]))
    thread = thread_with(api)
    events = events_of(api.post(f"/threads/{thread['id']}/runs",
                                json={"assistant_id": asst["id"], "stream": True}))
    assert events[-2].event == "thread.run.failed"
    assert events[-2].data["last_error"] == {"code": "rate_limit_exceeded", "message": "slow down"}


def test_client_that_disconnects_mid_stream_does_not_cancel_the_run(api, served, script):
    asst = assistant(api, script([{"text": " ".join(["word"] * 60)}], delay=0.01))
    thread = thread_with(api)
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=30) as own:
        with own.stream("POST", f"/threads/{thread['id']}/runs",
                        json={"assistant_id": asst["id"], "stream": True}) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: ") and '"thread.run"' in line:
                    break
            run_id = decode(f"{line}\n\n")[0].data["id"]
    # the connection is closed; the run goes on to the end
    run = poll(api, thread["id"], run_id, terminal)
    assert run["status"] == "completed"
    reply = ok(api.get(f"/threads/{thread['id']}/messages", params={"run_id": run_id}),
               "ListMessagesResponse")["data"][0]
    assert reply["content"][0]["text"]["value"].split() == ["word"] * 60


# -- HTTP errors ------------------------------------------------------------------------------

def test_error_statuses_and_bodies(api, script):
    assert failed(api.get("/nothing/here"), 404)["code"] == "unknown_url"
    wrong_method = api.put("/assistants", json={})
    assert failed(wrong_method, 405)["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "GET, POST"
    assert failed(api.delete("/threads/runs"), 404)["message"]  # thread "runs" doesn't exist
    bad = api.post("/threads", content=b'{"messages": [', headers={"content-type": "application/json"})
    assert "JSON" in failed(bad, 400)["message"]
    assert "object" in failed(api.post("/threads", json=[1, 2]), 400)["message"]
    assert failed(api.post("/threads/thread_missing/runs", json={"assistant_id": "asst_x"}), 404)
    thread = thread_with(api)
    assert failed(api.post(f"/threads/{thread['id']}/runs", json={}), 400)["param"] == "assistant_id"
    assert failed(api.get(f"/threads/{thread['id']}/runs/run_missing"), 404)


def test_stream_request_that_fails_up_front_is_a_json_error(api):
    response = api.post("/threads/thread_missing/runs",
                        json={"assistant_id": "asst_x", "stream": True})
    assert response.headers["content-type"].startswith("application/json")
    assert "No thread found" in failed(response, 404)["message"]


class _BrokenBackend:
    """A backend whose stream breaks after one event: the one failure the real engine can't be
    made to produce on demand."""

    async def call(self, op: str, params: Any = None, *, body: Any = None, query: Any = None) -> Any:
        raise NotFoundError("nothing here")

    async def stream(self, op: str, params: Any = None, *, body: Any = None) -> AsyncIterator[Event]:
        yield Event("thread.message.delta", {"id": "msg_1", "object": "thread.message.delta",
                                             "delta": {"content": []}})
        raise InternalServerError("engine exploded", code="server_error")

    async def aclose(self) -> None:
        return None


async def test_failure_mid_stream_becomes_an_error_event_then_done():
    server = uvicorn.Server(uvicorn.Config(create_app(_BrokenBackend()), host="127.0.0.1", port=0,
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{port}/v1/threads/t/runs",
                                         json={"assistant_id": "a", "stream": True})
        assert response.status_code == 200
        # (sse.decode raises on an error event, so the wire text is read as is)
        blocks = [b.split("\n") for b in response.text.split("\n\n") if b]
        names = [lines[0].removeprefix("event: ") for lines in blocks]
        payloads = [lines[1].removeprefix("data: ") for lines in blocks]
        assert names == ["thread.message.delta", "error", "done"]
        error = json.loads(payloads[1])
        validate_event("error", error)
        assert error == {"message": "engine exploded", "type": "server_error", "param": None,
                         "code": "server_error"}
        assert payloads[2] == "[DONE]"
    finally:
        server.should_exit = True
        await task


# -- auth, CORS, binding ----------------------------------------------------------------------

def test_bearer_key_is_required_and_never_echoed(served):
    with httpx.Client(base_url=served.url, timeout=10) as anon:
        missing = failed(anon.get("/assistants"), 401)
        assert missing["code"] == "missing_api_key"
        wrong = anon.get("/assistants", headers={"authorization": "Bearer not-the-key"})
        assert failed(wrong, 401)["code"] == "invalid_api_key"
        assert "not-the-key" not in wrong.text and served.api_key not in wrong.text
        basic = anon.get("/assistants", headers={"authorization": f"Basic {served.api_key}"})
        failed(basic, 401)
        ok(anon.get("/assistants", headers=served.headers), "ListAssistantsResponse")


def test_without_a_key_no_auth_is_asked():
    with ServedEngine() as server, httpx.Client(base_url=server.url, timeout=10) as anon:
        ok(anon.get("/assistants"), "ListAssistantsResponse")


def test_cors_is_off_unless_configured(api, served):
    """Even with the key, a browser request from an origin not configured is refused."""
    preflight = api.options("/assistants", headers={
        "origin": "http://evil.example", "access-control-request-method": "POST"})
    assert failed(preflight, 403)["code"] == "origin_not_allowed"
    plain = api.get("/assistants", headers={"origin": "http://evil.example"})
    assert failed(plain, 403)["code"] == "origin_not_allowed"
    assert not any(h.startswith("access-control-") for h in plain.headers)
    assert api.options("/assistants").status_code == 405  # no Origin: not a preflight at all


def test_cors_allows_only_configured_origins():
    origin = "http://localhost:5173"
    with ServedEngine(cors_origins=(origin,)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        preflight = client.options("/threads", headers={
            "origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        assert client.get("/assistants", headers={"origin": origin}).headers[
            "access-control-allow-origin"] == origin
        other = client.get("/assistants", headers={"origin": "http://other.example"})
        assert failed(other, 403)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in other.headers


def test_cli_serves_on_loopback_by_default_and_keeps_the_key_quiet(tmp_path):
    key = "cli-secret-key-123"
    server = ServerProcess("--store", str(tmp_path / "store.sqlite3"),
                           env={"JUPYTER_RUNS_API_KEY": key})
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
        assert key not in server.banner
        assert f"store {tmp_path / 'store.sqlite3'}" in server.banner
        with httpx.Client(base_url=server.url, timeout=10) as client:
            failed(client.get("/assistants"), 401)
            ok(client.get("/assistants", headers={"authorization": f"Bearer {key}"}),
               "ListAssistantsResponse")
    finally:
        log = server.stop()
    assert key not in log
    assert (tmp_path / "store.sqlite3").exists()


def test_run_of_an_assistant_without_instructions_fits_the_spec(api, script):
    """The spec types a run's ``instructions`` as a string (required): none must still be one."""
    asst = ok(api.post("/assistants", json={"model": script([{"text": "ok"}])}), "AssistantObject")
    thread = thread_with(api)
    events = events_of(api.post(f"/threads/{thread['id']}/runs",
                                json={"assistant_id": asst["id"], "stream": True}))
    assert events[-2].event == "thread.run.completed"
    ok(api.get(f"/threads/{thread['id']}/runs/{events[-2].data['id']}"), "RunObject")


def test_cli_refuses_a_bad_port_and_a_taken_one(tmp_path):
    import socket
    import subprocess
    import sys

    from tests.served import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "jupyter_runs", "serve", "--store", str(tmp_path / "s.sqlite3")]
    bad = subprocess.run([*cli, "--port", "70000"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode == 2 and "--port must be 0..65535" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([*cli, "--port", str(port)], capture_output=True, text=True,
                              env=env, timeout=60)
    assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    nostore = subprocess.run([*cli[:-1], str(blocked / "s.sqlite3"), "--port", "0"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert nostore.returncode == 1 and "cannot open the store" in nostore.stderr


def test_every_operation_has_exactly_its_own_route():
    from jupyter_runs.backends import OPERATIONS
    from jupyter_runs.server import match

    for op in OPERATIONS.values():
        path = "/v1" + op.path.replace("{", "").replace("}", "_x")
        found, params = match(op.method, path)
        assert found is op, (op.name, found.name)
        assert all(v.endswith("_x") for v in params.values())


def test_streamed_create_thread_and_run_starts_with_thread_created(api, script):
    asst = assistant(api, script([{"text": "New thread, new run."}]))
    events = events_of(api.post("/threads/runs", json={
        "assistant_id": asst["id"], "stream": True,
        "thread": {"messages": [{"role": "user", "content": "start"}]}}))
    assert [e.event for e in events[:2]] == ["thread.created", "thread.run.created"]
    thread_id = events[0].data["id"]
    assert events[-2].event == "thread.run.completed" and events[-2].data["thread_id"] == thread_id
    listed = ok(api.get(f"/threads/{thread_id}/messages", params={"order": "asc"}),
                "ListMessagesResponse")
    assert [m["role"] for m in listed["data"]] == ["user", "assistant"]
