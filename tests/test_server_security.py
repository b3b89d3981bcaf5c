"""The served engine's edge against hostile requests: cross-site requests a web page can make
without asking (CSRF), DNS rebinding (a foreign ``Host``), bodies the spec refuses, non-finite
numbers, ``scripted:`` paths outside the served directory, duplicate tool outputs, and an empty
``--api-key``. Against a real ``jupyter-runs serve`` subprocess over loopback unless an
in-process server is needed for a check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jupyter_runs.server import create_app
from tests.openapi_spec import PACKAGED_SPEC, packaged_text, validate
from tests.served import REPO, ServedEngine, ServerProcess

KEY = "security-test-key"


@pytest.fixture(scope="module")
def open_server() -> Iterator[ServerProcess]:
    """``jupyter-runs serve`` without a key (the case a web page can attack)."""
    server = ServerProcess("--store", ":memory:").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(open_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=open_server.url, timeout=30) as client:
        yield client


def refused(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error with ``status`` (and ``param`` when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    validate("ErrorResponse", body)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" or status in (401, 403)
    if param is not None:
        assert error["param"] == param, error
    return error


def counts(api: httpx.Client) -> tuple[int, int]:
    """How many assistants and threads the store holds."""
    assistants = api.get("/assistants", params={"limit": 100}).json()["data"]
    threads = api.get("/threads", params={"limit": 100}).json()["data"]
    return len(assistants), len(threads)


# -- CSRF: what a web page can send without a preflight -----------------------------------------

def test_text_plain_and_form_bodies_create_nothing(api):
    before = counts(api)
    payload = '{"model": "scripted:x.json"}'
    for content_type in ("text/plain", "text/plain;charset=UTF-8",
                         "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = api.post("/assistants", content=payload, headers={"content-type": content_type})
        assert refused(response, 415)["code"] == "unsupported_media_type"
    no_type = api.post("/threads", content=b"{}", headers={"content-type": ""})
    refused(no_type, 415)
    assert counts(api) == before


def test_a_browser_request_from_another_origin_is_refused(api):
    before = counts(api)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        response = api.post("/threads", json={}, headers={"origin": origin})
        assert refused(response, 403)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in response.headers
    assert refused(api.get("/threads", headers={"origin": "http://evil.example"}), 403)
    assert counts(api) == before


def test_a_configured_origin_may_call_and_read(tmp_path):
    origin = "http://localhost:5173"
    with ServerProcess("--store", ":memory:", "--cors-origin", origin) as server, \
            httpx.Client(base_url=server.url, timeout=30) as api:
        preflight = api.options("/threads", headers={
            "origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        created = api.post("/threads", json={}, headers={"origin": origin})
        assert created.status_code == 200, created.text
        assert created.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in created.headers["access-control-expose-headers"]
        assert refused(api.post("/threads", json={}, headers={"origin": "http://evil.example"}), 403)


# -- DNS rebinding: the Host header --------------------------------------------------------------

def test_a_foreign_host_is_not_answered_without_a_key(api, open_server):
    thread = api.post("/threads", json={"metadata": {"secret": "s3cret-plan"}}).json()
    port = open_server.url.split(":")[2].split("/")[0]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", ""):
        response = api.get("/threads", headers={"host": host})
        assert response.status_code == 400, (host, response.text)
        assert thread["id"] not in response.text and "s3cret" not in response.text
        assert api.post("/threads", json={}, headers={"host": host}).status_code == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}",
                 "localhost"):
        response = api.get("/threads", headers={"host": host})
        assert response.status_code == 200, (host, response.text)
        assert thread["id"] in response.text


def test_with_a_key_any_host_is_answered_and_the_key_still_required(tmp_path):
    with ServerProcess("--store", ":memory:", env={"JUPYTER_RUNS_API_KEY": KEY}) as server, \
            httpx.Client(base_url=server.url, timeout=30) as api:
        proxied = {"host": "assistants.internal.example", "authorization": f"Bearer {KEY}"}
        assert api.get("/threads", headers=proxied).status_code == 200
        assert refused(api.get("/threads", headers={"host": "evil.example"}), 401)
        # the key does not excuse the body's type or a foreign page
        assert refused(api.post("/threads", content=b"{}", headers={
            **proxied, "content-type": "text/plain"}), 415)
        assert refused(api.post("/threads", json={}, headers={
            **proxied, "origin": "http://evil.example"}), 403)


# -- the API key ---------------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full.pop("JUPYTER_RUNS_API_KEY", None) if env is None else None
    return subprocess.run([sys.executable, "-m", "jupyter_runs", "serve", "--port", "0",
                           "--store", ":memory:", *args], capture_output=True, text=True,
                          env=full, timeout=60)


def test_an_empty_api_key_is_an_error_not_an_open_server():
    flag = _cli("--api-key", "")
    assert flag.returncode == 2 and "--api-key is empty" in flag.stderr
    assert "http://" not in flag.stdout
    blank = _cli("--api-key", "  ")
    assert blank.returncode == 2
    env = _cli(env={"JUPYTER_RUNS_API_KEY": ""})
    assert env.returncode == 2 and "JUPYTER_RUNS_API_KEY is empty" in env.stderr
    with pytest.raises(ValueError, match="empty"):
        create_app(object(), api_key="")  # type: ignore[arg-type]


def test_serving_beyond_loopback_without_a_key_warns_loudly(monkeypatch, capsys):
    import jupyter_runs.server
    from jupyter_runs.__main__ import main
    from jupyter_runs.server import exposure_warnings

    seen: list[tuple[str, Any]] = []
    # serve() itself would bind the address: stand in for it, the CLI's output is the subject
    monkeypatch.setattr(jupyter_runs.server, "serve", lambda host, *a, **k: seen.append((host, k)))
    monkeypatch.delenv("JUPYTER_RUNS_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: serving on 0.0.0.0 WITHOUT an API key" in err and "--api-key" in err
    assert main(["serve", "--host", "0.0.0.0", "--api-key", KEY]) == 0
    assert main(["serve"]) == 0
    assert main(["serve", "--host", "::1"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    assert main(["serve", "--cors-origin", "*"]) == 0
    assert "every web page you open" in capsys.readouterr().err
    assert [host for host, _ in seen] == ["0.0.0.0", "0.0.0.0", "127.0.0.1", "::1", "127.0.0.1"]
    assert exposure_warnings("192.168.1.5", None) and exposure_warnings("my-host.lan", None)
    assert not exposure_warnings("127.0.0.2", None) and not exposure_warnings("localhost", None)


# -- bodies and queries the spec refuses: 400 naming the parameter --------------------------------

def test_bodies_the_spec_refuses_are_400s_naming_the_parameter(api):
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "keep me"}]}).json()
    tid = thread["id"]
    cases = [
        ("/threads", {"messages": {}}, "messages"),
        ("/threads", {"tool_resources": 5}, "tool_resources"),
        ("/threads", {"messages": [{"role": "user", "content": "x", "attachments": 5}]},
         "messages[0].attachments"),
        (f"/threads/{tid}/messages", {"role": "user", "content": "x", "attachments": 5},
         "attachments"),
        (f"/threads/{tid}/messages", {"role": "robot", "content": "x"}, "role"),
        (f"/threads/{tid}/messages", {"role": "user"}, "content"),
        ("/assistants", {"model": "scripted:x.json", "tools": "all"}, "tools"),
        ("/assistants", {"model": "scripted:x.json", "temperature": 7}, "temperature"),
        ("/assistants", {"model": "scripted:x.json", "metadata": {"n": 1}}, "metadata.n"),
        ("/assistants", {"model": "scripted:x.json", "surprise": True}, "surprise"),
        ("/assistants", {}, "model"),
        (f"/threads/{tid}/runs", {"assistant_id": "asst_x", "stream": "yes"}, "stream"),
    ]
    for path, body, param in cases:
        error = refused(api.post(path, json=body), 400, param)
        assert param in error["message"], error
    messages = api.get(f"/threads/{tid}/messages").json()["data"]
    assert [m["content"][0]["text"]["value"] for m in messages] == ["keep me"]


def test_repeated_query_parameters_are_400s(api):
    tid = api.post("/threads", json={}).json()["id"]
    refused(api.get(f"/threads/{tid}/messages?after=a&after=b"), 400, "after")
    refused(api.get(f"/threads/{tid}/messages?run_id=a&run_id=b"), 400, "run_id")
    refused(api.get("/assistants?limit=1&limit=2"), 400, "limit")
    refused(api.get("/assistants?limit=ten"), 400, "limit")
    refused(api.get("/assistants?order=sideways"), 400, "order")
    assert api.get(f"/threads/{tid}/messages?order=asc&limit=5&run_id=run_x").status_code == 200


def test_deeply_nested_json_is_a_400_not_a_500(api):
    before = counts(api)
    for depth in (65, 600, 5000):
        nested = "[" * depth + "]" * depth
        body = ('{"model": "scripted:x.json", "tools": [{"type": "function", "function": '
                '{"name": "f", "parameters": {"type": "object", "deep": ' + nested + "}}}]}")
        error = refused(api.post("/assistants", content=body,
                                 headers={"content-type": "application/json"}), 400)
        assert "deep" in error["message"]
    assert counts(api) == before
    ok = "[" * 20 + "]" * 20
    fine = api.post("/assistants", json={"model": "scripted:x.json", "metadata": {}, "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "deep": json.loads(ok)}}}]})
    assert fine.status_code == 200, fine.text


def test_non_finite_numbers_are_refused_and_never_echoed(api):
    tid = api.post("/threads", json={}).json()["id"]
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = '{"assistant_id": "asst_x", "temperature": ' + literal + "}"
        response = api.post(f"/threads/{tid}/runs", content=body,
                            headers={"content-type": "application/json"})
        error = refused(response, 400)
        assert "finite" in error["message"]
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in the response"))
    assert api.get(f"/threads/{tid}/runs").json()["data"] == []


def test_the_packaged_request_schemas_are_the_spec_subsets():
    assert PACKAGED_SPEC.read_text(encoding="utf-8") == packaged_text(), (
        "jupyter_runs/_spec.json is stale: run `python -m tests.openapi_spec`")


# -- scripted: paths on a served engine ---------------------------------------------------------

def _run_to_end(api: httpx.Client, model: str) -> dict[str, Any]:
    asst = api.post("/assistants", json={"model": model})
    assert asst.status_code == 200, asst.text
    run = api.post("/threads/runs", json={"assistant_id": asst.json()["id"], "thread": {
        "messages": [{"role": "user", "content": "go"}]}})
    assert run.status_code == 200, run.text
    run = run.json()
    for _ in range(1000):
        run = api.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
        if run["status"] in ("completed", "failed", "cancelled", "expired", "incomplete"):
            return run
        time.sleep(0.02)
    raise AssertionError(f"run stuck in {run['status']}")


def test_scripted_paths_resolve_only_inside_the_scripted_dir(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "ok.json").write_text(json.dumps({"turns": [{"text": "inside"}]}))
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"turns": [{"text": "leaked"}]}))
    (served / "link.json").symlink_to(outside)
    with ServerProcess("--store", ":memory:", scripted_dir=str(served)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as api:
        done = _run_to_end(api, "scripted:ok.json")
        assert done["status"] == "completed"
        errors = {}
        for model in (f"scripted:{outside}", "scripted:../outside.json", "scripted:link.json",
                      "scripted:/etc/passwd", "scripted:/etc/no-such-file"):
            run = _run_to_end(api, model)
            assert run["status"] == "failed", (model, run)
            errors[model] = run["last_error"]["message"]
            assert "outside this server's scripted directory" in errors[model]
        # an existing and a missing file outside get the same answer: no existence oracle
        assert (errors["scripted:/etc/passwd"].replace("passwd", "?")
                == errors["scripted:/etc/no-such-file"].replace("no-such-file", "?"))
        assert "leaked" not in json.dumps(api.get("/threads").json())


# -- submit_tool_outputs ------------------------------------------------------------------------

def test_duplicate_tool_call_ids_are_a_400_and_the_run_keeps_waiting(api, script):
    model = script([{"tool_calls": [{"name": "f", "arguments": {}}, {"name": "f", "arguments": {}}]},
                    {"text": "done"}])
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    asst = api.post("/assistants", json={"model": model, "tools": [tool]}).json()
    run = api.post("/threads/runs", json={"assistant_id": asst["id"], "thread": {}}).json()
    for _ in range(500):
        run = api.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
        if run["status"] == "requires_action":
            break
        time.sleep(0.02)
    a, b = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
    url = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"
    twice = api.post(url, json={"tool_outputs": [{"tool_call_id": a, "output": "1"},
                                                 {"tool_call_id": a, "output": "2"}]})
    error = refused(twice, 400, "tool_outputs[1].tool_call_id")
    assert a in error["message"]
    assert api.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()["status"] == \
        "requires_action"
    good = api.post(url, json={"tool_outputs": [{"tool_call_id": a, "output": "1"},
                                                {"tool_call_id": b, "output": "2"}]})
    assert good.status_code == 200, good.text


# -- openai-python through the hardened edge -----------------------------------------------------

@pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning")
def test_openai_python_still_works_through_the_server(script):
    import openai  # the pinned test dependency: the last release with beta.threads
    from openai import AssistantEventHandler

    model = script([{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
                    {"text": "It is 5."}])
    tool = {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
    for server in (ServedEngine(), ServedEngine(api_key=KEY)):
        with server:
            client = openai.OpenAI(base_url=server.url, api_key=server.api_key or "unused",
                                   max_retries=0)
            beta = client.beta
            asst = beta.assistants.create(model=model, tools=[tool], instructions="Add.",
                                          metadata={"k": "v"}, temperature=0.5)
            thread = beta.threads.create(messages=[{"role": "user", "content": "2+3?"}])
            run = beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
            assert run.status == "requires_action"
            calls = run.required_action.submit_tool_outputs.tool_calls
            with beta.threads.runs.submit_tool_outputs_stream(
                thread_id=thread.id, run_id=run.id, event_handler=AssistantEventHandler(),
                tool_outputs=[{"tool_call_id": c.id, "output": "5"} for c in calls],
            ) as stream:
                stream.until_done()
            text = [m.content[0].text.value for m in beta.threads.messages.list(thread.id, order="asc")]
            assert text == ["2+3?", "It is 5."]
            page = beta.threads.runs.list(thread.id, limit=5, order="desc")
            assert [r.status for r in page.data] == ["completed"]
            assert beta.assistants.delete(asst.id).deleted

