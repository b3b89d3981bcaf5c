"""``%%run_assistant`` in real IPython kernels (jupyter_client): the background path.

Background runs stream on the kernel's event loop after the cell has returned, so these tests read
the kernel's iopub channel past the cell's ``idle`` status: widget messages that arrive after it are
the proof that the kernel was free while text was still streaming.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from tests.served import ServerProcess

REPO = Path(__file__).resolve().parents[1]
LONG_REPLY = " ".join(f"word{i}" for i in range(150))


class Kernel:
    """A real kernel with a store of its own and a scripted model preset."""

    def __init__(self, tmp_path: Path, script_turns: list[dict[str, Any]], delay: float) -> None:
        self.store = tmp_path / "threads.sqlite3"
        script = tmp_path / "script.json"
        script.write_text(json.dumps({"delay": delay, "turns": script_turns}))
        self.km, self.kc = start_new_kernel(
            kernel_name="python3", cwd=str(tmp_path),
            env={**_env(), "JUPYTER_RUNS_STORE": str(self.store), "JUPYTER_RUNS_MODEL": f"scripted:{script}"},
        )
        self.log: list[dict[str, Any]] = []
        self.setup()

    def setup(self) -> None:
        self.ok("%load_ext jupyter_runs")

    def execute(self, code: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run a cell to its idle status: (reply content, iopub messages of that cell). Messages
        of earlier cells' background runs that arrive meanwhile go to ``self.log`` too."""
        msg_id = self.kc.execute(code)
        mine: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            self.log.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            mine.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        # Skip stray replies (start_new_kernel can leave an extra kernel_info_reply queued).
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], mine

    def ok(self, code: str) -> list[dict[str, Any]]:
        content, msgs = self.execute(code)
        assert content["status"] == "ok", (code, content.get("ename"), content.get("evalue"))
        return msgs

    def value(self, expr: str) -> Any:
        msgs = self.ok(f"import json as _j; print(_j.dumps({expr}))")
        out = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        return json.loads(out.strip().splitlines()[-1])

    def drain(self, until: float = 2.0) -> list[dict[str, Any]]:
        """iopub messages that arrive after a cell went idle (none are lost: the kernel queues them)."""
        out, end = [], time.monotonic() + until
        while time.monotonic() < end:
            try:
                out.append(self.kc.get_iopub_msg(timeout=0.1))
            except queue.Empty:
                continue
        self.log.extend(out)
        return out

    def updates(self) -> list[str]:
        """The plain-text fallbacks of every display update seen so far."""
        return [m["content"]["data"].get("text/plain", "") for m in self.log
                if m["msg_type"] == "update_display_data"]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "JUPYTER_RUNS_MODEL")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, [{"text": LONG_REPLY}], delay=0.01)
    yield k
    k.close()


def test_cell_returns_at_once_and_the_kernel_is_idle_while_text_streams(kernel: Kernel) -> None:
    msgs = kernel.ok("%%run_assistant -o r\nTell me a long story.")
    assert any(m["msg_type"] == "display_data" for m in msgs)  # the widget
    later = kernel.drain(1.0)
    # Widget traffic after the cell's idle status: the run streams while the kernel is free.
    assert sum(m["msg_type"] == "comm_msg" for m in later) >= 3
    assert kernel.value("r.status") in ("queued", "in_progress")
    kernel.ok("await r.wait_async()")
    assert kernel.value("r.status") == "completed"
    assert kernel.value("r.event_data['messages'][-1].text") == LONG_REPLY
    kernel.drain(0.3)
    assert kernel.updates() and "completed" in kernel.updates()[-1]


def test_sync_wait_on_a_background_run_raises_at_once_saying_to_await(kernel: Kernel) -> None:
    kernel.ok("%%run_assistant -o r\nhi")
    content, _ = kernel.execute("r.wait()")
    assert content["status"] == "error" and content["ename"] == "RuntimeError"
    assert "await run.wait_async()" in content["evalue"]
    kernel.ok("await r.wait_async()")
    assert kernel.value("r.status") == "completed"


def test_two_runs_stream_at_once_and_a_busy_thread_refuses_a_blocking_run(kernel: Kernel) -> None:
    kernel.ok("%%run_assistant -t a -o ra\nfirst")
    kernel.ok("%%run_assistant -t b -o rb\nsecond")
    # --wait would block the loop the busy thread's run needs (a background run would queue).
    content, _ = kernel.execute("%%run_assistant -t a --wait\nthird")
    assert content["status"] == "error" and "already has a run going" in content["evalue"]
    kernel.ok("import asyncio; await asyncio.gather(ra.wait_async(), rb.wait_async())")
    assert kernel.value("[ra.status, rb.status, ra.thread_id != rb.thread_id]") == ["completed", "completed", True]
    # Once a run has ended, its thread takes the next one.
    kernel.ok("%%run_assistant -t a --wait -o rc\nthird, again")
    assert kernel.value("rc.status") == "completed"


def test_named_thread_survives_a_kernel_restart(tmp_path: Path) -> None:
    k = Kernel(tmp_path, [{"text": "noted"}], delay=0.0)
    try:
        k.ok("%%run_assistant -t keep --wait -o r\nremember this")
        first = k.value("r.thread_id")
        k.km.restart_kernel(now=True)
        k.kc.wait_for_ready(timeout=60)
        k.setup()
        k.ok("%%run_assistant -t keep --wait -o r\nwhat did I say")
        assert k.value("r.thread_id") == first
        texts = k.value(
            "[m.text for m in __import__('jupyter_runs').Client().messages.list(r.thread_id, order='asc')]")
        assert texts == ["remember this", "noted", "what did I say", "noted"]
    finally:
        k.close()


def test_interrupt_during_wait_cancels_the_run(kernel: Kernel) -> None:
    kernel.kc.execute("%%run_assistant --wait -o r\nlong one please")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until text is streaming
        msg = kernel.kc.get_iopub_msg(timeout=10)
        if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "custom":
            break  # a batch of text deltas
    kernel.km.interrupt_kernel()
    reply = kernel.kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    status = kernel.value(
        "__import__('jupyter_runs').Run(__import__('jupyter_runs').Client(), r.thread_id, run_id=r.id)"
        ".retrieve_status()")
    assert status in ("cancelling", "cancelled")


def test_a_background_run_that_loses_its_server_shows_failed_with_the_reason(tmp_path: Path) -> None:
    script = tmp_path / "slow.json"
    script.write_text(json.dumps({"delay": 0.02, "turns": [{"text": LONG_REPLY}]}))
    k = Kernel(tmp_path, [{"text": "unused"}], delay=0.0)
    server = ServerProcess("--store", str(tmp_path / "served.sqlite3")).start()
    try:
        k.ok(f"%%run_assistant --base-url {server.url} -m scripted:{script} -o r\nstream please")
        k.drain(0.5)
        server.kill()
        k.ok("import asyncio\nfor _ in range(200):\n    if r.done: break\n    await asyncio.sleep(0.05)")
        k.drain(0.5)
        assert k.updates(), "the widget's saved fallback was not updated at the run's end"
        final = k.updates()[-1]
        assert "failed" in final and "APIConnectionError" in final
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()
        k.close()



def test_poll_mode_in_the_background_updates_the_widget_to_the_end(tmp_path: Path) -> None:
    k = Kernel(tmp_path, [{"tool_calls": [{"name": "double", "arguments": {"x": 21}}]}, {"text": "It is 42."}],
               delay=0.0)
    try:
        k.ok('def double(x: int) -> int:\n    """Twice x."""\n    return 2 * x')
        k.ok("%%run_assistant --poll --tools double\nDouble 21")
        k.ok("import jupyter_runs as jr\nawait jr.wait_all()")
        k.drain(0.3)
        final = k.updates()[-1]
        assert "It is 42." in final and "double(" in final and "completed" in final
    finally:
        k.close()
