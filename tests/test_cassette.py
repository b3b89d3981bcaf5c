"""Record and replay of model calls, against the fake Chat Completions server on a real socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.backends.local.models import ModelRequest
from jupyter_runs.backends.local.models.cassette import canonical_request, request_key
from tests.fakes.chat_server import FakeChatServer, text_reply, tool_calls_reply


def lookup(city: str) -> dict[str, Any]:
    """Weather for a city."""
    return {"city": city, "temp": 21}


def _client(chat_server: FakeChatServer, cassette: Path, mode: str) -> jr.Client:
    return jr.Client(store=":memory:", cassette=cassette, cassette_mode=mode,
                     model_config={"base_url": chat_server.base_url, "retry_backoff": 0.001,
                                   "max_retries": 0})


def _ask(client: jr.Client, text: str, tools: list[Any] | None = None) -> tuple[Any, str]:
    asst = client.assistants.create(model="compat:fake-model", tools=tools or [])
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content=text)
    run = client.runs.create(thread.id, assistant_id=asst.id)
    try:
        run.wait(env={"lookup": lookup}, timeout=30)
    except jr.RunError:
        pass  # the test reads the run's end state
    reply = [m for m in client.messages.list(thread.id, order="asc").to_list() if m.role == "assistant"]
    return run, "".join(m.content[0].text.value for m in reply)


def test_replay_answers_without_the_network(chat_server, tmp_path):
    tape = tmp_path / "nb.cassette.jsonl"
    chat_server.add(tool_calls_reply([("call_a1", "lookup", '{"city": "Oslo"}')]),
                    text_reply("Oslo is ", "21 degrees."))
    with _client(chat_server, tape, "record") as client:
        run, reply = _ask(client, "Weather in Oslo?", [lookup])
    assert run.data["status"] == "completed" and reply == "Oslo is 21 degrees."
    recorded = len(chat_server.requests)
    assert recorded == 2
    lines = tape.read_text().splitlines()
    assert len(lines) == 2
    # Diff-friendly: one request a line, keys sorted, no secrets or URLs.
    for line in lines:
        entry = json.loads(line)
        assert list(entry) == sorted(entry)
        assert chat_server.base_url not in line and "authorization" not in line.lower()

    chat_server.stop()  # replay must not need it
    with _client(chat_server, tape, "replay") as client:
        run, reply = _ask(client, "Weather in Oslo?", [lookup])
    assert run.data["status"] == "completed"
    assert reply == "Oslo is 21 degrees."
    assert len(chat_server.requests) == recorded


def test_replay_miss_names_what_changed(chat_server, tmp_path):
    tape = tmp_path / "t.jsonl"
    chat_server.add(text_reply("Blue."))
    with _client(chat_server, tape, "record") as client:
        _ask(client, "What colour is the sky?")
    with _client(chat_server, tape, "replay") as client:
        run, reply = _ask(client, "What colour is the sea?")
    assert run.data["status"] == "failed"
    message = run.data["last_error"]["message"]
    assert "What colour is the sea?" in message and "What colour is the sky?" in message
    assert "cassette" in message
    assert len(chat_server.requests) == 1


def test_auto_records_only_what_is_new(chat_server, tmp_path):
    tape = tmp_path / "t.jsonl"
    chat_server.add(text_reply("One."), text_reply("Two."))
    with _client(chat_server, tape, "auto") as client:
        assert _ask(client, "first")[1] == "One."
        assert _ask(client, "first")[1] == "One."  # a hit: not asked again
        assert _ask(client, "second")[1] == "Two."
    assert len(chat_server.requests) == 2
    assert len(tape.read_text().splitlines()) == 2


def test_record_replaces_the_line_of_the_same_request(chat_server, tmp_path):
    tape = tmp_path / "t.jsonl"
    chat_server.add(text_reply("Old."), text_reply("New."))
    with _client(chat_server, tape, "record") as client:
        _ask(client, "q")
        _ask(client, "q")
    [line] = tape.read_text().splitlines()
    assert "New." in line and "Old." not in line


def test_a_failed_call_is_not_recorded(chat_server, tmp_path):
    from tests.fakes.chat_server import Reply

    tape = tmp_path / "t.jsonl"
    chat_server.add(Reply(status=400, error={"message": "bad request"}))
    with _client(chat_server, tape, "record") as client:
        run, _ = _ask(client, "q")
    assert run.data["status"] == "failed"
    assert not tape.exists() or tape.read_text() == ""


def test_key_ignores_minted_tool_call_ids_and_run_ids():
    def request(call_id: str, run_id: str) -> ModelRequest:
        return ModelRequest(model="m", run_id=run_id, call_index=1, messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "1"}])

    a = canonical_request("compat:m", request("call_x1", "run_1"))
    b = canonical_request("compat:m", request("call_y2", "run_2"))
    assert request_key(a) == request_key(b)
    c = canonical_request("compat:other", request("call_x1", "run_1"))
    assert request_key(a) != request_key(c)


def test_bad_mode_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cassette mode must be one of"):
        jr.Client(store=":memory:", cassette=tmp_path / "t.jsonl", cassette_mode="rewind")


def test_remote_client_refuses_a_cassette(tmp_path):
    with pytest.raises(ValueError, match="jupyter-runs serve --cassette"):
        jr.Client(base_url="http://127.0.0.1:9/v1", cassette=tmp_path / "t.jsonl",
                  cassette_mode="replay")


def test_served_engine_replays_its_own_cassette_and_ignores_one_a_client_names(chat_server, tmp_path):
    import os

    from tests.served import ServerProcess

    tape = tmp_path / "served.jsonl"
    chat_server.add(text_reply("Recorded once."))
    env = {**os.environ, "JUPYTER_RUNS_COMPAT_BASE_URL": chat_server.base_url}
    with ServerProcess("--store", str(tmp_path / "a.sqlite3"), "--cassette", str(tape),
                       "--cassette-mode", "record", env=env) as server, \
            jr.Client(base_url=server.url) as client:
        assert _ask(client, "q")[1] == "Recorded once."
    chat_server.stop()
    sneaky = tmp_path / "chosen-by-client.jsonl"
    with ServerProcess("--store", str(tmp_path / "b.sqlite3"), "--cassette", str(tape),
                       "--cassette-mode", "replay", env=env) as server, \
            jr.Client(base_url=server.url) as client:
        assert _ask(client, "q")[1] == "Recorded once."
        # A remote client naming a cassette in run metadata gets no file opened or written.
        asst = client.assistants.create(model="compat:fake-model")
        thread = client.threads.create(messages=[{"role": "user", "content": "q"}])
        run = client.runs.create(thread.id, assistant_id=asst.id,
                                 metadata={"jupyter_runs_cassette": f"record:{sneaky}"})
        run.wait(timeout=30)
        assert run.data["status"] == "completed"  # answered from the server's own cassette
    assert not sneaky.exists()


def test_every_model_event_type_survives_the_file():
    """Events the adapters add (reasoning, usage details) are recorded without a change here."""
    from jupyter_runs.backends.local import models
    from jupyter_runs.backends.local.models.cassette import _event_types, decode_event, encode_event

    samples = [models.TextDelta("hi"), models.ToolCallDelta(0, id="c", name="f", arguments="{}"),
               models.Finish("stop")]
    if hasattr(models, "ReasoningDelta"):
        samples.append(models.ReasoningDelta("thinking"))
    for event in samples:
        line = json.dumps(encode_event(event))
        assert decode_event(json.loads(line)) == event
    assert {"TextDelta", "ToolCallDelta", "Usage", "Finish"} <= set(_event_types())
