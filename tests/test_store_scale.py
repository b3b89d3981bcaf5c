"""What the store costs does not grow with what it holds: every list query is answered by an index
(its ``EXPLAIN QUERY PLAN`` says so), a page reads the same number of rows with 50 threads or
2,000, a thread is found by name without reading the others, and an old store file gains the
indexes on open and keeps working."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_runs.backends.local import objects as obj
from jupyter_runs.backends.local.store import SCHEMA_VERSION, THREAD_NAME_KEY, Store, migrate


def named_thread(store: Store, name: str) -> dict[str, Any]:
    thread = obj.new_thread({"metadata": {THREAD_NAME_KEY: name}})
    store.put_thread(thread)
    return thread


def fill(store: Store, threads: int, messages: int = 3) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``threads`` named threads (``t0000``...) in one transaction; the last gets a run with
    ``messages`` messages and a step."""
    with store.transaction():
        made = [named_thread(store, f"t{i:04d}") for i in range(threads)]
        last = made[-1]
        assistant = obj.new_assistant({"model": "scripted:x.json"})
        store.put_assistant(assistant)
        run = obj.new_run(last["id"], assistant, {}, 600)
        store.put_run(run)
        for i in range(messages):
            message = obj.new_message(last["id"], {"role": "user", "content": f"m{i}"})
            message["run_id"] = run["id"] if i % 2 else None
            store.put_message(message)
        store.put_step({"id": "step_1", "object": "thread.run.step", "created_at": run["created_at"],
                        "run_id": run["id"], "thread_id": last["id"], "status": "completed"})
    return made, run


def every_list_call(store: Store, threads: list[dict[str, Any]], run: dict[str, Any]) -> list[Callable[[], Any]]:
    """Each list the engine serves, in each of its shapes (both orders, both cursors, filters)."""
    tid, rid = run["thread_id"], run["id"]
    mid = store.list_messages(tid, limit=1)["data"][0]["id"]
    calls: list[Callable[[], Any]] = []
    for order in ("asc", "desc"):
        calls += [
            lambda o=order: store.list_threads(order=o),
            lambda o=order: store.list_threads(order=o, after=threads[5]["id"]),
            lambda o=order: store.list_threads(order=o, before=threads[5]["id"]),
            lambda o=order: store.list_threads(order=o, name="t0003"),
            lambda o=order: store.list_threads(order=o, name="t0003", after=threads[3]["id"]),
            lambda o=order: store.list_threads(order=o, name_prefix="t00"),
            lambda o=order: store.list_assistants(order=o),
            lambda o=order: store.list_messages(tid, order=o),
            lambda o=order: store.list_messages(tid, order=o, after=mid),
            lambda o=order: store.list_messages(tid, order=o, before=mid),
            lambda o=order: store.list_messages(tid, run_id=rid, order=o),
            lambda o=order: store.list_runs(tid, order=o),
            lambda o=order: store.list_steps(tid, rid, order=o),
        ]
    return calls


def traced_selects(store: Store, call: Callable[[], Any]) -> list[str]:
    seen: list[str] = []
    store.connection.set_trace_callback(seen.append)
    try:
        call()
    finally:
        store.connection.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def plan(store: Store, sql: str) -> list[str]:
    return [row[3] for row in store.connection.execute("EXPLAIN QUERY PLAN " + sql)]


def test_every_list_query_is_answered_by_an_index() -> None:
    store = Store(":memory:")
    threads, run = fill(store, 40)
    checked = 0
    for call in every_list_call(store, threads, run):
        for sql in traced_selects(store, call):
            steps = plan(store, sql)
            for step in steps:
                # A table read is a SEARCH (by key or index) or a SCAN that walks an index in
                # order and stops at the page's LIMIT; never a plain scan of the table.
                if step.startswith("SCAN"):
                    assert "USING INDEX" in step or "USING COVERING INDEX" in step, f"{sql}\n -> {steps}"
            if " >= '" not in sql:
                # Only a name-prefix filter sorts (its matches, not the table); every other page
                # comes out of the index already in order.
                assert not any("TEMP B-TREE" in s for s in steps), f"{sql}\n -> {steps}"
            checked += 1
    assert checked >= 30  # the lists and their cursor look-ups were all traced


def vm_steps(store: Store, call: Callable[[], Any]) -> int:
    """SQLite virtual-machine instructions (in hundreds) a call executes: rows read, not time."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    store.connection.set_progress_handler(tick, 100)
    try:
        call()
    finally:
        store.connection.set_progress_handler(None, 0)
    return count


@pytest.mark.parametrize("what", ["newest page", "page after a cursor", "by name", "by name prefix"])
def test_a_page_of_threads_reads_as_much_with_2000_threads_as_with_50(what: str) -> None:
    costs = []
    for n in (50, 2000):
        store = Store(":memory:")
        threads, _ = fill(store, n)
        calls = {
            "newest page": lambda s=store: s.list_threads(limit=20),
            "page after a cursor": lambda s=store, t=threads: s.list_threads(limit=20, after=t[-10]["id"]),
            "by name": lambda s=store: s.list_threads(name="t0007", limit=1),
            "by name prefix": lambda s=store: s.list_threads(name_prefix="t000", limit=20),
        }
        costs.append(vm_steps(store, calls[what]))
        store.close()
    small, large = costs
    # A full scan would read 40x the rows; an indexed page reads the same ones (a few steps of
    # slack for the deeper b-tree).
    assert large <= small * 1.5 + 5, f"{what}: {small} -> {large} (x100 VM steps)"


def test_threads_are_found_by_exact_name_and_by_prefix_newest_first() -> None:
    store = Store(":memory:")
    older = named_thread(store, "notebook:a.ipynb")
    newer = named_thread(store, "notebook:a.ipynb")
    other = named_thread(store, "notebook:b.ipynb")
    named_thread(store, "notebook")  # the prefix itself is a name that starts with it
    store.put_thread(obj.new_thread({}))  # no name: never matches
    assert [t["id"] for t in store.list_threads(name="notebook:a.ipynb")["data"]] == [newer["id"], older["id"]]
    assert store.list_threads(name="notebook:c.ipynb")["data"] == []
    prefixed = store.list_threads(name_prefix="notebook:", order="asc")["data"]
    assert [t["id"] for t in prefixed] == [older["id"], newer["id"], other["id"]]
    assert len(store.list_threads(name_prefix="note")["data"]) == 4
    assert store.list_threads(name_prefix="notebook:a.ipynbx")["data"] == []


def test_a_store_file_from_before_the_indexes_gains_them_and_keeps_its_threads(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, upto=2) == 2
    thread = obj.new_thread({"metadata": {THREAD_NAME_KEY: "kept"}})
    conn.execute("INSERT INTO threads (id, created_at, data) VALUES (?, ?, ?)",
                 (thread["id"], thread["created_at"], json.dumps(thread)))
    message = obj.new_message(thread["id"], {"role": "user", "content": "still here"})
    message["run_id"] = "run_old"
    conn.execute("INSERT INTO messages (id, thread_id, created_at, data, run_id) VALUES (?, ?, ?, ?, ?)",
                 (message["id"], thread["id"], message["created_at"], json.dumps(message), "run_old"))
    conn.close()
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    indexes = {r[0] for r in store.connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"threads_created", "threads_name", "assistants_created", "messages_run"} <= indexes
    assert [t["id"] for t in store.list_threads(name="kept")["data"]] == [thread["id"]]
    assert [m["id"] for m in store.list_messages(thread["id"], run_id="run_old")["data"]] == [message["id"]]
    assert store.integrity_check() == "ok"
    store.close()
