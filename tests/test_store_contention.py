"""The store shared with other processes: a second process holding SQLite's write lock, and two
processes (a served engine and an embedded client) running one store.

Nothing here asserts wall time: progress is proven by order (reads answered while a write is still
waiting; a run reported ended while the file still says otherwise).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import jupyter_runs as jr
from jupyter_runs.errors import BadRequestError, ConflictError
from jupyter_runs.wire import TERMINAL_STATUSES
from tests.lock_holder import LockHolder, wait_for
from tests.served import ServerProcess


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "threads.sqlite3"


@pytest.fixture
def client(store_path: Path) -> Iterator[jr.Client]:
    c = jr.Client(store=str(store_path))
    try:
        yield c
    finally:
        c.close()


def _file_status(path: Path, run_id: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()


def _status(client: jr.Client, thread_id: str, run_id: str) -> str:
    return client.runs.retrieve(thread_id, run_id).status


def test_run_ends_and_frees_its_thread_while_another_process_holds_the_write_lock(
        client: jr.Client, store_path: Path, script: Callable[..., str]) -> None:
    reply = " ".join(f"w{i}" for i in range(30))
    asst = client.assistants.create(model=script([{"text": reply}], delay=0.03))
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content="hi")
    run = client.runs.create(thread.id, assistant_id=asst.id)
    wait_for(lambda: _status(client, thread.id, run.id) == "in_progress", what="the run to start")
    with LockHolder(store_path):
        # The reply finishes and the run ends while no write can land.
        ended = wait_for(lambda: (s := _status(client, thread.id, run.id)) in TERMINAL_STATUSES and s,
                         what="the run to end")
        assert ended == "completed"
        assert _file_status(store_path, run.id) == "in_progress"  # the file has not caught up yet
    # The lock is gone: the file catches up with what clients were told, and the thread is free.
    wait_for(lambda: _file_status(store_path, run.id) == "completed", what="the file to catch up")
    client.messages.create(thread.id, role="user", content="again")
    second = client.runs.create(thread.id, assistant_id=asst.id)
    assert second.wait(env={}).status == "completed"
    texts = [m.text for m in client.messages.list(thread.id, order="asc").to_list()]
    assert texts == ["hi", reply, "again", reply]


def test_reads_are_answered_while_a_write_waits_for_the_lock(client: jr.Client, store_path: Path) -> None:
    thread = client.threads.create()
    with LockHolder(store_path) as holder:
        outcome: list[object] = []

        def write() -> None:
            try:
                outcome.append(client.messages.create(thread.id, role="user", content="queued"))
            except Exception as exc:  # pragma: no cover - reported by the assertions below
                outcome.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)  # let the write reach the engine first (ordering only, nothing timed)
        reads_while_waiting = 0
        for _ in range(20):
            assert client.threads.retrieve(thread.id).id == thread.id
            if not outcome:
                reads_while_waiting += 1
        assert reads_while_waiting == 20 and writer.is_alive()
        holder.release()
        writer.join(60)
    [message] = outcome
    assert not isinstance(message, Exception), message
    assert [m.text for m in client.messages.list(thread.id).to_list()] == ["queued"]


def test_one_active_run_per_thread_across_processes(
        client: jr.Client, store_path: Path, script: Callable[..., str]) -> None:
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {}}]}, {"text": "done"}])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    server = ServerProcess("--store", str(store_path)).start()
    try:
        remote = jr.Client(base_url=server.url)
        try:
            asst = remote.assistants.create(model=model, tools=[tool])
            thread = remote.threads.create()
            remote.messages.create(thread.id, role="user", content="look it up")
            theirs = remote.runs.create(thread.id, assistant_id=asst.id)
            wait_for(lambda: remote.runs.retrieve(thread.id, theirs.id).status == "requires_action",
                     what="the served run to wait for tool outputs")
        finally:
            remote.close()
        # This process shares the store: the thread is taken by the server's run.
        with pytest.raises(BadRequestError, match="another process"):
            client.runs.create(thread.id, assistant_id=asst.id)
        with pytest.raises(ConflictError, match="another process"):
            client.runs.cancel(thread.id, theirs.id)
        assert _status(client, thread.id, theirs.id) == "requires_action"
        server.kill()  # a crash: nothing marks the run, and it must not hold the thread forever
        mine = client.runs.create(thread.id, assistant_id=asst.id)
        assert mine.id != theirs.id
        old = client.runs.retrieve(thread.id, theirs.id)
        assert old.status == "failed" and "interrupted" in old.last_error.message
        mine.cancel()
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()


def test_cancelling_a_run_whose_process_died_answers_what_it_is_now(
        client: jr.Client, store_path: Path, script: Callable[..., str]) -> None:
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {}}]}, {"text": "done"}])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    server = ServerProcess("--store", str(store_path)).start()
    try:
        remote = jr.Client(base_url=server.url)
        try:
            asst = remote.assistants.create(model=model, tools=[tool])
            thread = remote.threads.create()
            run = remote.runs.create(thread.id, assistant_id=asst.id)
            wait_for(lambda: remote.runs.retrieve(thread.id, run.id).status == "requires_action",
                     what="the served run to wait for tool outputs")
        finally:
            remote.close()
        server.kill()
        answer = client.runs.cancel(thread.id, run.id)
        assert answer.status == "failed" and "interrupted" in answer.last_error.message
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()


def test_tool_outputs_submitted_while_the_lock_is_held_are_kept(
        client: jr.Client, store_path: Path, script: Callable[..., str]) -> None:
    model = script([{"tool_calls": [{"name": "lookup", "arguments": {}}]}, {"text": "done"}])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    asst = client.assistants.create(model=model, tools=[tool])
    thread = client.threads.create()
    run = client.runs.create(thread.id, assistant_id=asst.id)
    wait_for(lambda: _status(client, thread.id, run.id) == "requires_action", what="requires_action")
    [call] = client.runs.retrieve(thread.id, run.id).required_action.submit_tool_outputs.tool_calls
    # Held past the old 5 s busy_timeout: the submit must wait for the lock, not fail.
    holder = LockHolder(store_path).start()
    threading.Timer(6.0, holder.release).start()
    try:
        client.runs.submit_tool_outputs(thread.id, run.id, tool_outputs=[
            {"tool_call_id": call.id, "output": "42"}])
    finally:
        holder.release()
    final = wait_for(lambda: (s := _status(client, thread.id, run.id)) in TERMINAL_STATUSES and s,
                     what="the run to end")
    assert final == "completed"
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    assert steps[0].step_details.tool_calls[0].function.output == "42"
