"""The SQLite store: durability, migrations, recovery of interrupted runs, pagination."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_runs.backends.local import objects as obj
from jupyter_runs.backends.local.store import (
    INTERRUPTED_ERROR,
    SCHEMA_VERSION,
    Store,
    default_store_path,
    migrate,
    new_id,
)
from jupyter_runs.errors import BadRequestError

ROOT = Path(__file__).resolve().parents[1]


def thread_with_messages(store: Store, texts: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    thread = obj.new_thread({})
    store.put_thread(thread)
    messages = []
    for text in texts:
        message = obj.new_message(thread["id"], {"role": "user", "content": text})
        store.put_message(message)
        messages.append(message)
    return thread, messages


def active_run(store: Store, thread_id: str, status: str = "in_progress") -> dict[str, Any]:
    assistant = obj.new_assistant({"model": "scripted:x.json"})
    store.put_assistant(assistant)
    run = obj.new_run(thread_id, assistant, {}, 600)
    run["status"] = status
    store.put_run(run)
    return run


def test_ids_look_like_the_apis() -> None:
    for prefix in ("asst", "thread", "msg", "run", "step"):
        ident = new_id(prefix)
        assert ident.startswith(prefix + "_") and len(ident) == len(prefix) + 25
    assert new_id("msg") != new_id("msg")


def test_file_store_uses_wal_foreign_keys_and_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "threads.sqlite3")
    conn = store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.schema_version() == SCHEMA_VERSION
    assert store.integrity_check() == "ok"
    store.close()


def test_reopen_keeps_threads_messages_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite3"
    store = Store(path)
    thread, messages = thread_with_messages(store, ["one", "two"])
    run = active_run(store, thread["id"], status="completed")
    store.close()
    again = Store(path)
    assert again.get_thread(thread["id"]) == thread
    assert [m["id"] for m in again.thread_messages(thread["id"])] == [m["id"] for m in messages]
    assert again.get_run(thread["id"], run["id"]) == run
    assert again.recovered == []
    again.close()


def test_deleting_a_thread_removes_its_messages_runs_and_steps() -> None:
    store = Store(":memory:")
    thread, _ = thread_with_messages(store, ["x"])
    run = active_run(store, thread["id"], status="completed")
    step = obj.new_step(run, {"type": "tool_calls", "tool_calls": []})
    store.put_step(step)
    assert store.delete_thread(thread["id"])
    assert store.thread_messages(thread["id"]) == []
    assert store.get_run(thread["id"], run["id"]) is None
    assert store.run_steps([run["id"]]) == {run["id"]: []}


def test_transaction_writes_all_or_nothing() -> None:
    store = Store(":memory:")
    thread, _ = thread_with_messages(store, [])
    message = obj.new_message(thread["id"], {"role": "user", "content": "kept?"})
    orphan = obj.new_message("thread_missing", {"role": "user", "content": "no thread"})
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.put_message(message)
        store.put_message(orphan)  # foreign key violation: the whole block rolls back
    assert store.thread_messages(thread["id"]) == []


def test_migrates_from_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, upto=1) == 1
    thread = obj.new_thread({})
    message = obj.new_message(thread["id"], {"role": "assistant", "content": "from v1"})
    message["run_id"] = "run_old"
    conn.execute("INSERT INTO threads (id, created_at, data) VALUES (?, ?, ?)",
                 (thread["id"], thread["created_at"], json.dumps(thread)))
    conn.execute("INSERT INTO messages (id, thread_id, created_at, data) VALUES (?, ?, ?, ?)",
                 (message["id"], thread["id"], message["created_at"], json.dumps(message)))
    conn.close()
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    page = store.list_messages(thread["id"], run_id="run_old")
    assert [m["id"] for m in page["data"]] == [message["id"]]
    assert store.integrity_check() == "ok"
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this jupyter_runs understands"):
        Store(path)


def test_runs_of_a_closed_store_are_marked_failed_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite3"
    store = Store(path)
    thread, _ = thread_with_messages(store, ["q"])
    run = active_run(store, thread["id"], status="requires_action")
    step = obj.new_step(run, {"type": "tool_calls", "tool_calls": []})
    store.put_step(step)
    store.close()  # as if the process had ended without finishing the run
    again = Store(path)
    assert again.recovered == [run["id"]]
    stored = again.get_run(thread["id"], run["id"])
    assert stored["status"] == "failed" and stored["last_error"] == INTERRUPTED_ERROR
    assert stored["failed_at"] and stored["required_action"] is None
    assert again.get_step(thread["id"], run["id"], step["id"])["status"] == "failed"
    again.close()


def test_runs_of_a_live_store_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite3"
    owner = Store(path)
    thread, _ = thread_with_messages(owner, ["q"])
    run = active_run(owner, thread["id"])
    second = Store(path)  # e.g. a server and a notebook on the same file
    assert second.recovered == []
    assert second.get_run(thread["id"], run["id"])["status"] == "in_progress"
    second.close()
    owner.close()


KILLED_SERVER = textwrap.dedent("""
    import asyncio, json, sys
    from jupyter_runs.backends.local.backend import LocalBackend

    async def main(path, fast, slow):
        backend = LocalBackend(path)
        a = await backend.call("create_assistant", body={"model": fast})
        t = await backend.call("create_thread", body={"messages": [{"role": "user", "content": "q"}]})
        async for e in backend.stream("create_run", {"thread_id": t["id"]}, body={"assistant_id": a["id"]}):
            pass
        body = {"assistant_id": a["id"], "model": slow}
        async for e in backend.stream("create_run", {"thread_id": t["id"]}, body=body):
            if e.event == "thread.message.delta":
                break
        print(json.dumps({"thread": t["id"]}), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main(*sys.argv[1:]))
""")


def test_sigkill_mid_run_keeps_completed_messages(tmp_path: Path) -> None:
    path = tmp_path / "threads.sqlite3"
    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    fast.write_text(json.dumps({"turns": [{"text": "first answer"}]}))
    slow.write_text(json.dumps({"delay": 0.2, "turns": [{"text": "slow " * 200}]}))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVER, str(path), f"scripted:{fast}", f"scripted:{slow}"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line, "the child process died before its run started"
        thread_id = json.loads(line)["thread"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    store = Store(path)
    assert store.integrity_check() == "ok"
    texts = [m["content"][0]["text"]["value"] for m in store.thread_messages(thread_id)]
    assert texts == ["q", "first answer"]  # the reply cut by the kill is not there, half-written
    interrupted, finished = store.list_runs(thread_id)["data"]
    assert finished["status"] == "completed"
    assert interrupted["status"] == "failed" and interrupted["last_error"] == INTERRUPTED_ERROR
    store.close()


def test_pagination_walks_both_ways() -> None:
    store = Store(":memory:")
    thread, messages = thread_with_messages(store, [str(i) for i in range(5)])
    ids = [m["id"] for m in messages]
    page = store.list_messages(thread["id"], limit=2, order="asc")
    assert [m["id"] for m in page["data"]] == ids[:2]
    assert page["has_more"] and page["first_id"] == ids[0] and page["last_id"] == ids[1]
    page = store.list_messages(thread["id"], limit=2, order="asc", after=ids[1])
    assert [m["id"] for m in page["data"]] == ids[2:4] and page["has_more"]
    page = store.list_messages(thread["id"], limit=2, order="asc", after=ids[3])
    assert [m["id"] for m in page["data"]] == ids[4:] and not page["has_more"]
    page = store.list_messages(thread["id"])  # default: newest first, 20
    assert [m["id"] for m in page["data"]] == ids[::-1] and not page["has_more"]
    page = store.list_messages(thread["id"], limit=2, after=ids[3])
    assert [m["id"] for m in page["data"]] == [ids[2], ids[1]]
    page = store.list_messages(thread["id"], limit=2, before=ids[1])
    assert [m["id"] for m in page["data"]] == [ids[3], ids[2]] and page["has_more"]
    page = store.list_messages(thread["id"], limit=10, order="asc", before=ids[2])
    assert [m["id"] for m in page["data"]] == ids[:2] and not page["has_more"]
    empty = store.list_messages("thread_none")
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None,
                     "has_more": False}


@pytest.mark.parametrize("query, param", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"),
    ({"order": "up"}, "order"), ({"after": "msg_unknown"}, "after"),
])
def test_bad_page_arguments_are_refused(query: dict[str, Any], param: str) -> None:
    store = Store(":memory:")
    thread, _ = thread_with_messages(store, ["x"])
    with pytest.raises(BadRequestError) as info:
        store.list_messages(thread["id"], **query)
    assert info.value.param == param


def test_default_path_follows_env_then_jupyter_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("JUPYTER_RUNS_STORE", str(tmp_path / "mine.sqlite3"))
    assert default_store_path() == tmp_path / "mine.sqlite3"
    monkeypatch.delenv("JUPYTER_RUNS_STORE")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    assert default_store_path() == tmp_path / "data" / "jupyter_runs" / "threads.sqlite3"
