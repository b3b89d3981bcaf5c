"""Reproducible notebooks in real kernels: re-running a cell rewinds its thread, Run All twice
sends identical requests, and a notebook recorded once replays byte for byte with no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from tests.fakes.chat_server import FakeChatServer, text_reply

REPO = Path(__file__).resolve().parents[1]


def _env(store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "JUPYTER_RUNS_MODEL") and not k.startswith("JUPYTER_RUNS_CASSETTE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["JUPYTER_RUNS_STORE"] = str(store)
    env.update(extra)
    return env


class CellKernel:
    """A kernel whose execute requests carry a cell id, as JupyterLab, Notebook 7 and VS Code send."""

    def __init__(self, tmp_path: Path, server: FakeChatServer) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path),
                                            env=_env(tmp_path / "threads.sqlite3"))
        self.server = server
        self.setup()

    def setup(self) -> None:
        self.run(None, "%load_ext jupyter_runs\n"
                 "%config RunAssistantMagics.model = 'compat:fake-model'\n"
                 f"%config RunAssistantMagics.model_base_url = '{self.server.base_url}'\n"
                 "%config RunAssistantMagics.wait = True")

    def run(self, cell_id: str | None, code: str) -> dict[str, Any]:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content,
                                  metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        deadline = time.monotonic() + 60
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["content"]["status"] == "ok", (code, reply["content"].get("evalue"))
                return reply["content"]

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)
        self.setup()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path, chat_server: FakeChatServer) -> Iterator[CellKernel]:
    k = CellKernel(tmp_path, chat_server)
    yield k
    k.close()


def _sent(server: FakeChatServer) -> list[list[tuple[str, Any]]]:
    return [[(m["role"], m.get("content")) for m in r.body["messages"]] for r in server.requests]


CELLS = [("c1", "%%run_assistant -t nb\nfirst question"),
         ("c2", "%%run_assistant -t nb\nsecond question"),
         ("c3", "%%run_assistant -t nb\nthird question")]


def test_rerunning_a_cell_rewinds_its_thread(kernel: CellKernel, chat_server: FakeChatServer) -> None:
    chat_server.default = text_reply("answer")
    for cell_id, code in CELLS:
        kernel.run(cell_id, code)
    kernel.run("c2", "%%run_assistant -t nb\nsecond question, edited")
    last = _sent(chat_server)[-1]
    assert last == [("user", "first question"), ("assistant", "answer"),
                    ("user", "second question, edited")]
    # Without a cell id (a console), a cell appends.
    kernel.run(None, "%%run_assistant -t nb\nfrom a console")
    assert [c for _, c in _sent(chat_server)[-1]][-2:] == ["answer", "from a console"]


def test_run_all_twice_after_a_restart_sends_identical_requests(
        kernel: CellKernel, chat_server: FakeChatServer) -> None:
    chat_server.default = text_reply("answer")
    for cell_id, code in CELLS:
        kernel.run(cell_id, code)
    first = _sent(chat_server)
    kernel.restart()
    for cell_id, code in CELLS:
        kernel.run(cell_id, code)
    assert _sent(chat_server)[3:] == first
    kernel.restart()
    for cell_id, code in CELLS:
        kernel.run(cell_id, code)
    assert _sent(chat_server)[6:] == first


def test_rerun_append_setting_keeps_piling_up(kernel: CellKernel, chat_server: FakeChatServer) -> None:
    chat_server.default = text_reply("answer")
    kernel.run(None, "%config RunAssistantMagics.rerun = 'append'")
    kernel.run("c1", "%%run_assistant -t nb\nfirst question")
    kernel.run("c1", "%%run_assistant -t nb\nfirst question")
    assert len(_sent(chat_server)[-1]) == 3


# -- a whole notebook, recorded then replayed ---------------------------------------------------

def _notebook(path: Path, prompts: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "%load_ext jupyter_runs\n"
        "%config RunAssistantMagics.model = 'compat:fake-model'\n"
        "def lookup(city: str) -> dict:\n"
        "    \"\"\"Weather for a city.\"\"\"\n"
        "    return {'city': city, 'temp': 21}")]
    nb.cells += [nbformat.v4.new_code_cell(f"%%run_assistant --tools lookup\n{p}") for p in prompts]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _execute(path: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=120", "--allow-errors", f"--output={out.name}",
         f"--output-dir={out.parent}", str(path)],
        env=env, cwd=path.parent, capture_output=True, text=True, timeout=300)


def _comparable(path: Path) -> str:
    """The executed notebook without nbconvert's own execution timestamps."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
    return json.dumps(nb, indent=1, sort_keys=True)


def _replies(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return ["\n".join(o.get("data", {}).get("text/plain", "") for o in c.outputs)
            for c in nb.cells[1:]]


def test_a_recorded_notebook_replays_byte_for_byte_without_the_network(tmp_path: Path) -> None:
    from tests.fakes.chat_server import tool_calls_reply

    nb = tmp_path / "analysis.ipynb"
    _notebook(nb, ["Weather in Oslo?", "And in Rome?"])
    server = FakeChatServer().start()
    server.add(tool_calls_reply([("call_1", "lookup", '{"city": "Oslo"}')]), text_reply("Oslo: 21."),
               text_reply("Rome: sunny."))
    try:
        # Headless executors do not tell the kernel which notebook it runs, so CI names the
        # cassette (relative to the notebook's folder, the kernel's working directory).
        env = _env(tmp_path / "rec.sqlite3", JUPYTER_RUNS_CASSETTE_MODE="record",
                   JUPYTER_RUNS_CASSETTE="analysis.cassette.jsonl",
                   JUPYTER_RUNS_COMPAT_BASE_URL=server.base_url)
        done = _execute(nb, tmp_path / "recorded.ipynb", env)
        assert done.returncode == 0, done.stderr[-2000:]
        calls = len(server.requests)
    finally:
        server.stop()
    assert calls == 3
    tape = tmp_path / "analysis.cassette.jsonl"
    assert len(tape.read_text().splitlines()) == 3
    replies = _replies(tmp_path / "recorded.ipynb")
    assert "Oslo: 21." in replies[0] and "Rome: sunny." in replies[1]

    # Replay: the server is gone, a fresh store, and the same bytes come out.
    env = _env(tmp_path / "replay.sqlite3", JUPYTER_RUNS_CASSETTE_MODE="replay",
               JUPYTER_RUNS_CASSETTE="analysis.cassette.jsonl",
               JUPYTER_RUNS_COMPAT_BASE_URL=server.base_url)
    done = _execute(nb, tmp_path / "replayed.ipynb", env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _comparable(tmp_path / "replayed.ipynb") == _comparable(tmp_path / "recorded.ipynb")

    # Edit one prompt: replay names that cell's prompt; auto records one new request.
    _notebook(nb, ["Weather in Oslo?", "And in Paris?"])
    done = _execute(nb, tmp_path / "edited.ipynb", env)
    assert done.returncode == 0, done.stderr[-2000:]
    edited = _replies(tmp_path / "edited.ipynb")
    assert "Oslo: 21." in edited[0]
    assert "failed" in edited[1] and "And in Paris?" in edited[1] and "And in Rome?" in edited[1]

    server = FakeChatServer().start()
    server.add(text_reply("Paris: rain."))
    try:
        env = _env(tmp_path / "auto.sqlite3", JUPYTER_RUNS_CASSETTE_MODE="auto",
                   JUPYTER_RUNS_CASSETTE="analysis.cassette.jsonl",
                   JUPYTER_RUNS_COMPAT_BASE_URL=server.base_url)
        done = _execute(nb, tmp_path / "auto.ipynb", env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(server.requests) == 1
    finally:
        server.stop()
    assert "Paris: rain." in _replies(tmp_path / "auto.ipynb")[1]
    assert len(tape.read_text().splitlines()) == 4


def test_default_cassette_lives_beside_the_notebook(tmp_path: Path, chat_server: FakeChatServer) -> None:
    notebook = tmp_path / "study.ipynb"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=_env(
        tmp_path / "threads.sqlite3", JPY_SESSION_NAME=str(notebook), JUPYTER_RUNS_CASSETTE_MODE="record"))
    try:
        k = CellKernel.__new__(CellKernel)
        k.km, k.kc, k.server = km, kc, chat_server
        k.setup()
        k.run("c1", "%%run_assistant\nhello")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    [line] = (tmp_path / "study.cassette.jsonl").read_text().splitlines()
    assert json.loads(line)["request"]["messages"][-1] == {"role": "user", "content": "hello"}


def test_runs_export_import_fork_delete(kernel: CellKernel, chat_server: FakeChatServer, tmp_path: Path) -> None:
    chat_server.default = text_reply("answer")
    kernel.run("c1", "%%run_assistant -t nb\nfirst question")
    kernel.run(None, f"%runs export nb -o {tmp_path / 'nb.json'}")
    kernel.run(None, f"%runs export nb -o {tmp_path / 'nb.md'}")
    kernel.run(None, f"%runs export nb --format html -o {tmp_path / 'nb.html'}")
    export = json.loads((tmp_path / "nb.json").read_text())
    assert [m["role"] for m in export["messages"]] == ["user", "assistant"]
    assert "first question" in (tmp_path / "nb.md").read_text()
    assert "<html>" in (tmp_path / "nb.html").read_text()
    kernel.run(None, f"%runs import {tmp_path / 'nb.json'} copy")
    kernel.run(None, "%runs fork nb branch")
    kernel.run("c2", "%%run_assistant -t branch\nfollow-up on the branch")
    assert [c for _, c in _sent(chat_server)[-1]] == ["first question", "answer", "follow-up on the branch"]
    kernel.run("c3", "%%run_assistant -t copy\nfollow-up on the copy")
    assert [c for _, c in _sent(chat_server)[-1]] == ["first question", "answer", "follow-up on the copy"]
    kernel.run(None, "%runs delete nb")
    content = {"code": "%runs export nb", "silent": False, "store_history": False,
               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
    msg = kernel.kc.session.msg("execute_request", content)
    kernel.kc.shell_channel.send(msg)
    reply = kernel.kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "error" and "no stored thread named 'nb'" in reply["content"]["evalue"]
    # The original's thread is gone, the fork is not.
    kernel.run("c2", "%%run_assistant -t branch\nstill here?")
    assert [c for _, c in _sent(chat_server)[-1]][:2] == ["first question", "answer"]
