"""Shared pytest fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.assistants_replay import AssistantsReplay
from tests.fakes.chat_server import FakeChatServer

SERVED_KEY = "test-server-key"


@pytest.fixture(autouse=True)
def scripted_requests_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read what the engine sent the scripted model; outside tests it keeps nothing."""
    from jupyter_runs.backends.local.models.scripted import ScriptedModel

    monkeypatch.setattr(ScriptedModel, "keep_requests", 64)


@pytest.fixture
def replay() -> Iterator[AssistantsReplay]:
    """A scripted Assistants server on 127.0.0.1 (real HTTP); ``replay.url`` is its ``/v1`` root."""
    with AssistantsReplay() as server:
        yield server


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    """A fake Chat Completions server on 127.0.0.1 (real socket); queue replies with ``add``."""
    server = FakeChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served() -> Iterator[Any]:
    """The embedded engine (in-memory store) served on 127.0.0.1 by uvicorn, bearer key
    ``served.api_key``; ``served.url`` is its ``/v1`` root (a ``tests.served.ServedEngine``)."""
    from tests.served import ServedEngine  # here, so a broken engine fails only its own tests

    with ServedEngine(api_key=SERVED_KEY) as server:
        yield server


@pytest.fixture
def script(tmp_path: Path) -> Callable[..., str]:
    """``script(turns, delay=0)`` writes a scripted-model file and returns its model id."""
    count = 0

    def write(turns: list[dict[str, Any]], delay: float = 0.0) -> str:
        nonlocal count
        count += 1
        path = tmp_path / f"script{count}.json"
        path.write_text(json.dumps({"delay": delay, "turns": turns}), encoding="utf-8")
        return f"scripted:{path}"

    return write
