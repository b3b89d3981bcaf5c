"""Every model request has a budget: oldest messages go first, the instructions and the current
turn stay, a tool call never loses its output, attachments and tool outputs are clipped to their
share, and a run reads only as many stored messages as its request can carry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupyter_runs as jr
from jupyter_runs import context
from jupyter_runs.backends.local import objects as obj
from jupyter_runs.backends.local.conversation import BYTES_PER_TOKEN, estimate_tokens
from jupyter_runs.backends.local.store import Store
from tests.fakes.chat_server import FakeChatServer, text_reply


def fill_thread(store: Store, thread_id: str, count: int) -> None:
    """``count`` alternating user/assistant messages (~130 bytes each), in one transaction."""
    with store.transaction():
        for i in range(count):
            role = "user" if i % 2 == 0 else "assistant"
            text = f"message {i}: " + ("the quarterly figures for region north were revised " * 2)
            store.put_message(obj.new_message(thread_id, {"role": role, "content": text}))


def count_reads(store: Store) -> list[int]:
    """Rows each ``recent_messages`` call returned (the store reads, newest first)."""
    reads: list[int] = []
    original = store.recent_messages

    def counted(thread_id: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        rows = original(thread_id, limit, offset)
        reads.append(len(rows))
        return rows

    store.recent_messages = counted  # type: ignore[method-assign]
    return reads


def check_tool_pairs(messages: list[dict[str, Any]]) -> int:
    """Assert every assistant tool call is followed by exactly its outputs and every output has
    its call; return how many tool calls the request carries."""
    pairs = 0
    i = 0
    while i < len(messages):
        m = messages[i]
        if m["role"] == "tool":
            raise AssertionError(f"tool output {m['tool_call_id']} without its call at {i}")
        if m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            answers = [x.get("tool_call_id") for x in messages[i + 1:i + 1 + len(ids)]]
            assert answers == ids, f"call {ids} split from its outputs {answers}"
            pairs += len(ids)
            i += len(ids)
        i += 1
    return pairs


def test_a_5000_message_thread_sends_a_request_within_budget(
    chat_server: FakeChatServer, tmp_path: Path
) -> None:
    budget = 2000
    client = jr.Client(store=tmp_path / "t.sqlite3",
                       model_config={"base_url": chat_server.base_url, "context_budget": budget})
    try:
        store = client.backend.store
        asst = client.assistants.create(model="compat:fake-model", instructions="Answer briefly.")
        thread = client.threads.create()
        fill_thread(store, thread.id, 5000)
        client.messages.create(thread.id, content="Which region was revised in message 4998?")
        reads = count_reads(store)
        chat_server.add(text_reply("North."))
        run = client.runs.create(thread.id, assistant_id=asst.id).wait()
        assert run.status == "completed"
        [request] = chat_server.requests
        messages = request.body["messages"]
        assert messages[0] == {"role": "system", "content": "Answer briefly."}
        assert messages[-1] == {"role": "user", "content": "Which region was revised in message 4998?"}
        assert messages[-2]["content"].startswith("message 4999: ")  # the newest are the ones kept
        assert estimate_tokens(messages) <= budget
        text = sum(len(m["content"].encode()) for m in messages)
        assert text <= budget * BYTES_PER_TOKEN, text
        sent = len(json.dumps(request.body).encode())  # JSON framing adds ~35 bytes a message
        assert sent <= budget * BYTES_PER_TOKEN * 1.25, sent
        assert 20 < len(messages) < 100  # ~130-byte messages in 8 KB, out of 5,001
        # Read newest first, only about as far as the budget reaches: not 5,001 rows.
        assert sum(reads) < 4 * len(messages) + 64, reads
        # The reply answers the latest question and lands on the thread.
        newest = client.messages.list(thread.id, limit=1).to_list()[0]
        assert newest.role == "assistant" and newest.content[0].text.value == "North."
    finally:
        client.close()


def test_max_prompt_tokens_is_the_budget_when_given(chat_server: FakeChatServer, tmp_path: Path) -> None:
    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url})
    try:
        asst = client.assistants.create(model="compat:fake-model")
        thread = client.threads.create()
        fill_thread(client.backend.store, thread.id, 600)
        client.messages.create(thread.id, content="latest?")
        chat_server.add(text_reply("ok"))
        run = client.runs.create(thread.id, assistant_id=asst.id, max_prompt_tokens=500,
                                 truncation_strategy={"type": "auto"}).wait()
        assert run.status == "completed"
        messages = chat_server.requests[0].body["messages"]
        assert estimate_tokens(messages) <= 500 and messages[-1]["content"] == "latest?"
        assert sum(len(m["content"].encode()) for m in messages) <= 500 * BYTES_PER_TOKEN
    finally:
        client.close()


def test_truncation_never_separates_a_tool_call_from_its_output(
    script: Callable[..., str], tmp_path: Path
) -> None:
    def lookup(n: int) -> str:
        """Look a number up."""
        return f"result {n}: " + "lorem ipsum dolor " * 40  # ~730 bytes

    model = script([{"tool_calls": [{"name": "lookup", "arguments": {"n": 1}},
                                    {"name": "lookup", "arguments": {"n": 2}}]},
                    {"text": "Looked both up."}])
    path = tmp_path / "tools.sqlite3"
    with jr.Client(store=path) as client:
        asst = client.assistants.create(model=model, tools=[lookup])
        thread = client.threads.create()
        for i in range(12):
            client.messages.create(thread.id, content=f"question {i}")
            assert client.runs.create(thread.id, assistant_id=asst.id).wait(env={"lookup": lookup}).status == "completed"
    kept = set()
    for budget in range(300, 3000, 97):  # boundaries fall at every kind of group
        with jr.Client(store=path, model_config={"context_budget": budget}) as client:
            client.messages.create(thread.id, content=f"budget {budget}")
            run = client.runs.create(thread.id, assistant_id=asst.id).wait(env={"lookup": lookup})
            assert run.status == "completed"
            for request in client.backend.engine.model(model).requests:
                pairs = check_tool_pairs(request.messages)
                kept.add(pairs)
                assert request.messages[0]["role"] == "user"  # never opens with an orphan reply
                assert any(m["role"] == "user" and m["content"] == f"budget {budget}" for m in request.messages)
    assert len(kept) > 3  # the budgets really cut at different places


def test_attachments_and_tool_outputs_are_clipped_to_their_share(
    chat_server: FakeChatServer,
) -> None:
    budget = 1000
    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url,
                                                       "context_budget": budget})
    try:
        asst = client.assistants.create(model="compat:fake-model")
        thread = client.threads.create()
        big = {"log": "\n".join(f"line {i}: " + "x" * 80 for i in range(200))}  # ~18 KB
        [att] = context.from_values({"log": big["log"]}, limit=None)
        assert att.size > 16_000
        client.messages.create(thread.id, content="What does the log say?", context=[att])
        chat_server.add(text_reply("ok"))
        client.runs.create(thread.id, assistant_id=asst.id).wait()
        sent = chat_server.requests[0].body["messages"][-1]["content"]
        assert sent.startswith("What does the log say?\n")
        block = sent.split("\n", 1)[1]
        assert context.is_block(block) and "truncated" in block
        assert len(block.encode()) <= budget * BYTES_PER_TOKEN * 0.5
        # The thread keeps the whole attachment; only the request was clipped.
        stored = client.messages.list(thread.id, order="asc", limit=1).to_list()[0]
        assert stored.content[1].text.value == att.text
    finally:
        client.close()


def test_a_huge_tool_output_is_clipped_to_its_share_in_the_request(script: Callable[..., str]) -> None:
    def dump() -> str:
        """Everything."""
        return "row " * 50_000  # 200 KB

    model = script([{"tool_calls": [{"name": "dump", "arguments": {}}]}, {"text": "Lots of rows."}])
    budget = 1000
    with jr.Client(store=":memory:", model_config={"context_budget": budget}) as client:
        asst = client.assistants.create(model=model, tools=[dump])
        thread = client.threads.create()
        client.messages.create(thread.id, content="dump it")
        run = client.runs.create(thread.id, assistant_id=asst.id).wait(env={"dump": dump})
        assert run.status == "completed"
        second = client.backend.engine.model(model).requests[1].messages
        [tool] = [m for m in second if m["role"] == "tool"]
        assert tool["content"].startswith("row row") and "truncated" in tool["content"]
        assert len(tool["content"].encode()) <= budget * BYTES_PER_TOKEN * 0.25
        assert second[0] == {"role": "user", "content": "dump it"}


def test_recent_messages_reads_newest_first_by_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    thread = obj.new_thread({})
    store.put_thread(thread)
    fill_thread(store, thread["id"], 10)
    texts = [m["content"][0]["text"]["value"].split(":")[0] for m in store.recent_messages(thread["id"], 3)]
    assert texts == ["message 9", "message 8", "message 7"]
    texts = [m["content"][0]["text"]["value"].split(":")[0] for m in store.recent_messages(thread["id"], 3, 8)]
    assert texts == ["message 1", "message 0"]
    plan = " ".join(str(r[-1]) for r in store.connection.execute(
        "EXPLAIN QUERY PLAN SELECT data FROM messages WHERE thread_id = ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT 3", (thread["id"],)))
    assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    store.close()
