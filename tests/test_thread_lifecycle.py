"""Thread lifecycle: rewind (re-running a cell), fork, export and import, embedded and served."""

from __future__ import annotations

import json
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.export import render, to_html, to_markdown


def lookup(city: str) -> dict[str, Any]:
    """Weather for a city."""
    return {"city": city, "temp": 21}


@pytest.fixture(params=["embedded", "served"])
def client(request, served):
    if request.param == "embedded":
        with jr.Client(store=":memory:") as c:
            yield c
    else:
        with jr.Client(base_url=served.url, api_key=served.api_key) as c:
            yield c


def _exchange(client: jr.Client, thread_id: str, asst_id: str, text: str, cell: str) -> Any:
    client.messages.create(thread_id, role="user", content=text, metadata={"jupyter_runs_cell": cell})
    run = client.runs.create(thread_id, assistant_id=asst_id)
    run.wait(env={"lookup": lookup}, timeout=30)
    return run


def _texts(client: jr.Client, thread_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.content[0].text.value)
            for m in client.messages.list(thread_id, order="asc").to_list()]


def test_rewind_moves_the_cell_and_all_after_it_into_history(client, script):
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {"city": "Oslo"}}]},
                    {"text": "Done."}])
    asst = client.assistants.create(model=model, tools=[lookup])
    thread = client.threads.create(metadata={"jupyter_runs_name": "nb"})
    for n in (1, 2, 3):
        _exchange(client, thread.id, asst.id, f"question {n}", f"cell-{n}")
    assert len(_texts(client, thread.id)) == 6

    result = client.threads.rewind(thread.id, metadata={"jupyter_runs_cell": "cell-2"})
    assert (result["messages"], result["runs"]) == (4, 2)
    assert _texts(client, thread.id) == [("user", "question 1"), ("assistant", "Done.")]
    # The first exchange keeps its run and its tool-call step; the rest is history, not lost.
    [run] = client.runs.list(thread.id).to_list()
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    history = result["history_thread_id"]
    assert [t for _, t in _texts(client, history)] == ["question 2", "Done.", "question 3", "Done."]
    assert len(client.runs.list(history).to_list()) == 2
    # No cell of that key: nothing moves.
    again = client.threads.rewind(thread.id, metadata={"jupyter_runs_cell": "cell-9"})
    assert again["messages"] == 0 and again["history_thread_id"] is None


def test_rewound_thread_sends_the_model_only_what_remains(script, tmp_path):
    model = script([{"text": "ok"}])
    with jr.Client(store=str(tmp_path / "s.sqlite3")) as client:
        asst = client.assistants.create(model=model)
        thread = client.threads.create()
        for n in (1, 2):
            _exchange(client, thread.id, asst.id, f"question {n}", f"c{n}")
        client.threads.rewind(thread.id, metadata={"jupyter_runs_cell": "c2"})
        _exchange(client, thread.id, asst.id, "question 2 again", "c2")
        sent = client.backend.engine.model(model).requests[-1].messages
    assert [m["content"] for m in sent] == ["question 1", "ok", "question 2 again"]


def test_fork_copies_messages_runs_and_steps(client, script):
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {"city": "Rome"}}]},
                    {"text": "Sunny."}])
    asst = client.assistants.create(model=model, tools=[lookup])
    thread = client.threads.create(metadata={"jupyter_runs_name": "orig"})
    _exchange(client, thread.id, asst.id, "weather?", "c1")
    fork = client.threads.fork(thread.id, metadata={"jupyter_runs_name": "branch"})
    assert fork.id != thread.id and fork.metadata == {"jupyter_runs_name": "branch"}
    assert _texts(client, fork.id) == _texts(client, thread.id)
    [run] = client.runs.list(fork.id).to_list()
    [orig_run] = client.runs.list(thread.id).to_list()
    assert run.id != orig_run.id and run.thread_id == fork.id
    steps = client.steps.list(fork.id, run.id, order="asc").to_list()
    call = steps[0].step_details.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.output)["city"] == "Rome"
    reply = [m for m in client.messages.list(fork.id).to_list() if m.role == "assistant"][0]
    assert steps[1].step_details.message_creation.message_id == reply.id
    assert reply.run_id == run.id
    # The original is untouched.
    assert len(client.runs.list(thread.id).to_list()) == 1


def test_export_round_trips_through_import(client, script):
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {"city": "Oslo"}}]},
                    {"text": "It is **21**."}])
    asst = client.assistants.create(model=model, tools=[lookup])
    thread = client.threads.create(metadata={"jupyter_runs_name": "exp"})
    _exchange(client, thread.id, asst.id, "weather?", "c1")
    export = json.loads(render(client.threads.export(thread.id), "json"))
    assert export["object"] == "thread.export" and len(export["runs"]) == 1
    assert export["runs"][0]["steps"][0]["step_details"]["tool_calls"][0]["function"]["name"] == "lookup"
    copy = client.threads.import_(export, metadata={"jupyter_runs_name": "exp2"})
    assert _texts(client, copy.id) == _texts(client, thread.id)


def test_markdown_and_html_exports_keep_model_text_inert():
    evil = "x\n\n    ```\n<img src=x onerror=alert(1)>\n````` [a](javascript:alert(2))"
    export = {"object": "thread.export", "version": 1, "thread": {"id": "thread_1", "metadata": {}},
              "messages": [{"role": "user", "content": [{"type": "text", "text": {"value": "hi"}}]},
                           {"role": "assistant", "run_id": "run_1",
                            "content": [{"type": "text", "text": {"value": evil}}]}],
              "runs": [{"id": "run_1", "steps": [{"step_details": {"tool_calls": [
                  {"type": "function", "function": {"name": "f<b>", "arguments": "{\"a\": \"<script>\"}",
                                                    "output": "<svg onload=alert(3)>"}}]}}]}]}
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": True}).render(to_markdown(export))
    assert "<img" not in rendered and "<svg" not in rendered and "<script" not in rendered
    assert 'href="javascript' not in rendered
    page = to_html(export)
    assert "<img" not in page and "<svg" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
