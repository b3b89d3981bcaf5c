"""Runs on one long thread leave nothing behind that grows with the thread: the scripted model
keeps no request (each holds the whole conversation) unless a test asks for it, and the run path
prepares the same SQL statements however many runs the thread has (sqlite3 caches prepared
statements by their text, so a text per thread length is memory per run)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.backends.local.models import ModelRequest
from jupyter_runs.backends.local.models.scripted import ScriptedModel


class RecordingConnection:
    """A sqlite3 connection that remembers the SQL text of every statement it runs."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.texts: set[str] = set()

    def execute(self, sql: str, *args: Any) -> Any:
        self.texts.add(sql)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def runs_on_one_thread(client: jr.Client, model: str, count: int, thread_id: str | None = None) -> str:
    assistant = client.assistants.create(model=model)
    thread_id = thread_id or client.threads.create().id
    for i in range(count):
        client.messages.create(thread_id, content=f"question {i}")
        run = client.runs.create(thread_id, assistant_id=assistant.id)
        run.wait(timeout=60)
        assert run.status == "completed"
    return thread_id


def test_scripted_model_keeps_no_request_outside_tests(script: Callable[..., str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScriptedModel, "keep_requests", 0)  # what a user gets
    model = script([{"text": "ok"}])
    with jr.Client(store=tmp_path / "t.sqlite3") as client:
        runs_on_one_thread(client, model, 5)
        assert len(client.backend.engine.model(model).requests) == 0
        gc.collect()
        name = model.partition(":")[2]  # a request's model is the id's name part: this script
        assert not [o for o in gc.get_objects() if isinstance(o, ModelRequest) and o.model == name]


def test_a_run_prepares_the_same_statements_however_long_its_thread(script: Callable[..., str],
                                                                    tmp_path: Path) -> None:
    model = script([{"text": "ok"}])
    with jr.Client(store=tmp_path / "t.sqlite3") as client:
        store = client.backend.store
        recorder = RecordingConnection(store._conn)
        store._conn = recorder
        thread_id = runs_on_one_thread(client, model, 3)
        seen = set(recorder.texts)
        runs_on_one_thread(client, model, 12, thread_id)
        assert recorder.texts - seen == set()
