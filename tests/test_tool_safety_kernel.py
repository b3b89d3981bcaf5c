"""Tools in real kernels: only what the user exposed runs, and a hung tool never wedges the kernel.

A stored assistant (``-a``) or a remote server decides which tool names a run declares; the notebook
decides which functions may run. A tool that sleeps 20 s is cut by its timeout, by the widget's
Stop button (a real comm message) and by Kernel › Interrupt (a real SIGINT), and each run ends in
a defined state with the reason on the tool's card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jupyter_runs as jr
from tests.served import ServerProcess
from tests.test_magic_kernel import Kernel

RMTREE = {"type": "function", "function": {
    "name": "rmtree", "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                                     "required": ["path"]}}}

DEFINE = """
import time
ran, woke, started = [], [], []

def rmtree(path: str) -> str:
    ran.append(path)
    return "deleted " + path

def safe() -> str:
    ran.append("safe")
    return "safe ok"

def nap() -> str:
    started.append(1)
    time.sleep(20)
    woke.append(1)
    return "woke up"
"""


def _script(tmp_path: Path, name: str, turns: list[dict[str, Any]]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"delay": 0.0, "turns": turns}))
    return path


def _outputs(k: Kernel) -> list[str]:
    """Tool outputs the model received in the kernel's last run ``r`` (from the stored steps)."""
    return k.value("[c['function']['output'] for s in r.event_data['steps'] "
                   "if s['type'] == 'tool_calls' for c in s['step_details']['tool_calls']]")


def _wait(k: Kernel) -> None:
    k.ok("try:\n    await r.wait_async()\nexcept Exception as e:\n    print(repr(e))")


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, [{"text": "hi"}], delay=0.0)
    k.ok(DEFINE)
    yield k
    k.close()


def test_stored_assistant_cannot_pick_notebook_functions(kernel: Kernel, tmp_path: Path) -> None:
    script = _script(tmp_path, "a.json", [
        {"tool_calls": [{"name": "rmtree", "arguments": {"path": "/precious"}}]}, {"text": "done"}])
    # Someone with access to the store made an assistant that declares `rmtree`.
    kernel.ok(f"import jupyter_runs as jr\nA = jr.Client().assistants.create(model='scripted:{script}', "
              f"tools=[{RMTREE!r}])")
    kernel.ok("%%run_assistant -a A -o r\nclean up")
    _wait(kernel)
    assert kernel.value("ran") == []
    assert kernel.value("r.status") == "completed"
    [output] = _outputs(kernel)
    assert "not exposed" in output and "rmtree" in output
    # What the user does expose still runs on the same assistant.
    script2 = _script(tmp_path, "b.json", [
        {"tool_calls": [{"name": "safe", "arguments": {}}]}, {"text": "done"}])
    kernel.ok(f"B = jr.Client().assistants.create(model='scripted:{script2}', tools=[{RMTREE!r}])")
    kernel.ok("%%run_assistant -a B --tools safe -o r\nbe safe")
    _wait(kernel)
    assert kernel.value("ran") == ["safe"] and _outputs(kernel) == ["safe ok"]


def test_remote_server_declaring_extra_tools_runs_none_of_them(kernel: Kernel, tmp_path: Path) -> None:
    script = _script(tmp_path, "r.json", [
        {"tool_calls": [{"name": "rmtree", "arguments": {"path": "/precious"}},
                        {"name": "safe", "arguments": {}}]}, {"text": "done"}])
    with ServerProcess("--store", str(tmp_path / "served.sqlite3")) as server:
        remote = jr.Client(base_url=server.url)
        try:
            asst = remote.assistants.create(model=f"scripted:{script}", tools=[
                RMTREE, {"type": "function", "function": {"name": "safe", "parameters": {"type": "object"}}}])
        finally:
            remote.close()
        kernel.ok(f"%%run_assistant --base-url {server.url} -a {asst.id} -o r\nclean up")
        _wait(kernel)
        assert kernel.value("r.status") == "completed"
        outputs = _outputs(kernel)
    assert kernel.value("ran") == []
    assert len(outputs) == 2 and all("not exposed" in o for o in outputs)


# ---- a tool that sleeps 20 s


def _start_nap(k: Kernel, tmp_path: Path, extra: str = "") -> None:
    script = _script(tmp_path, "nap.json", [
        {"tool_calls": [{"name": "nap", "arguments": {}}]}, {"text": "after the nap"}])
    k.ok(f"%%run_assistant -m scripted:{script} --tools nap -o r {extra}\nnap please")
    deadline = time.monotonic() + 60
    while not k.value("len(started)"):  # the kernel answers while the tool runs
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.1)


def test_timeout_cuts_a_sleeping_tool_and_tells_the_model(kernel: Kernel, tmp_path: Path) -> None:
    kernel.ok("%config RunAssistantMagics.tool_timeout = 1.0")
    _start_nap(kernel, tmp_path)
    _wait(kernel)
    assert kernel.value("woke") == []  # cut, not waited for
    assert kernel.value("r.status") == "completed"  # the model got the error and answered
    [output] = _outputs(kernel)
    assert output == "error: tool 'nap' timed out after 1 s and was stopped (its thread was abandoned)"


def test_timeout_cuts_a_tool_on_the_main_thread_of_a_waiting_cell(kernel: Kernel, tmp_path: Path) -> None:
    script = _script(tmp_path, "nap.json", [
        {"tool_calls": [{"name": "nap", "arguments": {}}]}, {"text": "after the nap"}])
    kernel.ok("%config RunAssistantMagics.tool_timeout = 1.0")
    kernel.ok(f"%%run_assistant --wait -m scripted:{script} --tools nap -o r\nnap please")
    assert kernel.value("woke") == [] and kernel.value("r.status") == "completed"
    [output] = _outputs(kernel)
    assert output == "error: tool 'nap' timed out after 1 s and was stopped"
    assert kernel.value("1 + 1") == 2


def _widget(k: Kernel) -> str:
    """The comm id of the newest RunWidget, from its display message."""
    for msg in reversed(k.log):
        data = msg.get("content", {}).get("data", {})
        view = data.get("application/vnd.jupyter.widget-view+json")
        if view:
            return view["model_id"]
    raise AssertionError("no widget was displayed")


def _click_stop(k: Kernel) -> None:
    content = {"comm_id": _widget(k), "data": {"method": "custom", "content": {"type": "stop"}}}
    k.kc.shell_channel.send(k.kc.session.msg("comm_msg", content))


def _ended(k: Kernel) -> str:
    deadline = time.monotonic() + 60
    while True:
        status = k.value("r.retrieve().status")
        if status in ("completed", "cancelled", "failed", "expired", "incomplete"):
            return status
        assert time.monotonic() < deadline, f"the run is still {status}"
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["", "--poll"])
def test_stop_cuts_a_running_tool_and_the_run_ends_cancelled(kernel: Kernel, tmp_path: Path, mode: str) -> None:
    _start_nap(kernel, tmp_path, mode)
    _click_stop(kernel)
    assert _ended(kernel) == "cancelled"
    _wait(kernel)
    assert kernel.value("woke") == []
    assert kernel.value("r.status") == "cancelled"
    kernel.drain(0.5)
    final = kernel.updates()[-1]
    assert "cancelled" in final.lower() and "completed" not in final.lower()


def test_kernel_interrupt_reaches_a_tool_of_a_background_run(kernel: Kernel, tmp_path: Path) -> None:
    _start_nap(kernel, tmp_path)
    kernel.km.interrupt_kernel()  # Kernel › Interrupt: SIGINT to an idle kernel
    assert _ended(kernel) == "cancelled"
    _wait(kernel)
    assert kernel.value("woke") == []
    assert kernel.value("r.status") == "cancelled"
    kernel.drain(0.5)
    assert "interrupted" in kernel.updates()[-1]  # the reason, on the tool's card
    assert kernel.value("1 + 1") == 2  # and the kernel is fine
    # Kernel › Interrupt still stops an ordinary cell afterwards (no handler of ours left behind).
    msg_id = kernel.kc.execute("import time\nfor _ in range(600): time.sleep(0.1)")
    wait_busy = time.monotonic() + 30
    while time.monotonic() < wait_busy:
        msg = kernel.kc.get_iopub_msg(timeout=10)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "busy"):
            break
    time.sleep(0.5)  # inside the loop (ordering only)
    kernel.km.interrupt_kernel()
    while True:
        reply = kernel.kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
