"""Side paths of a run in real kernels (issue #13): Stop with an approval pending, failures before
the run exists, Run All with several runs on one thread, and the per-notebook thread in nbclassic.

The kernels are real (jupyter_client), and so are the widget's comm messages and the display
updates that end up in a saved notebook (``Kernel.updates()``).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from tests.test_magic_kernel import LONG_REPLY, Kernel, _env


def test_stop_with_an_approval_pending_cancels_and_ends_the_task(tmp_path: Path) -> None:
    turns = [{"tool_calls": [{"name": "drop", "arguments": {"table": "t"}}]}, {"text": "dropped"}]
    k = Kernel(tmp_path, turns, delay=0.0)
    try:
        k.ok('def drop(table: str) -> str:\n    """Drop a table."""\n    return "gone"')
        k.ok("%%run_assistant --tools drop --approve drop -o r\nDrop t")
        k.ok(textwrap.dedent("""
            import asyncio
            from IPython import get_ipython
            magics = get_ipython().magics_manager.registry["RunAssistantMagics"]
            for _ in range(400):
                w = next(iter(magics._tasks)).get_coro().cr_frame.f_locals.get("self") if magics._tasks else None
                if w is not None and w.approvals and w.approvals[0]["status"] == "pending":
                    break
                await asyncio.sleep(0.05)
            assert w.approvals[0]["status"] == "pending", w.approvals
        """))
        k.ok("w.stop()")  # what the Stop button's comm message does
        k.ok("import jupyter_runs as jr\nawait asyncio.wait_for(jr.wait_all(), 30)")
        assert k.value("r.status") == "cancelled"
        assert k.value("w.approvals[0]['status']") == "cancelled"
        assert k.value("w.run['status']") == "cancelled"
        content, _ = k.execute("await r.wait_async()")
        assert content["status"] == "error" and content["ename"] == "RunError", content  # ends, never hangs
        # Approving afterwards does nothing: the card is settled, no tool output is submitted.
        k.ok("w._answer(w.approvals[0]['id'], True, None, None)")
        assert k.value("r.retrieve().status") == "cancelled"
        k.drain(0.3)
        assert "cancelled" in k.updates()[-1]
    finally:
        k.close()


def test_a_run_refused_at_creation_shows_failed_with_the_reason(tmp_path: Path) -> None:
    k = Kernel(tmp_path, [{"text": "unused"}], delay=0.0)
    try:
        k.ok("%%run_assistant -a nosuchthing -o r\nhello")
        k.ok("import jupyter_runs as jr\nawait jr.wait_all()")
        k.drain(0.3)
        final = k.updates()[-1]
        assert "failed" in final and "nosuchthing" in final, final
        k.ok("%%run_assistant --max-tokens 10 -o r2\nhello")
        k.ok("await jr.wait_all()")
        k.drain(0.3)
        final = k.updates()[-1]
        assert "failed" in final and "max_completion_tokens" in final, final
        # The live widget's state says so too (what the browser renders), not "queued".
        states = [json.dumps(m["content"]["data"].get("state", {})) for m in k.log if m["msg_type"] == "comm_msg"]
        assert any('"failed"' in s and "max_completion_tokens" in s for s in states)
    finally:
        k.close()


def test_run_all_with_three_runs_on_one_thread_runs_them_in_order(tmp_path: Path) -> None:
    k = Kernel(tmp_path, [{"text": LONG_REPLY}], delay=0.005)
    try:
        k.ok("%%run_assistant -t shared -o a\nfirst")
        k.ok("%%run_assistant -t shared -o b\nsecond")
        msgs = k.ok("%%run_assistant -t shared -o c\nthird")
        # The cells returned while the first run streams: the kernel is free.
        assert k.value("[a.status in ('queued', 'in_progress'), repr(b).startswith('QueuedRun')]") == [True, True]
        shown = [m["content"]["data"].get("text/plain", "") for m in msgs if m["msg_type"] == "display_data"]
        assert any("waiting" in s for s in shown), shown
        k.ok("import asyncio\nawait asyncio.gather(a.wait_async(), b.wait_async(), c.wait_async())")
        assert k.value("[a.status, b.status, c.status]") == ["completed"] * 3
        texts = k.value("[m.text for m in __import__('jupyter_runs').Client().messages.list(a.thread_id, order='asc')]")
        assert texts == ["first", LONG_REPLY, "second", LONG_REPLY, "third", LONG_REPLY]
        assert k.value("len({a.thread_id, b.thread_id, c.thread_id})") == 1
    finally:
        k.close()


def test_stop_while_waiting_drops_the_queued_run(tmp_path: Path) -> None:
    k = Kernel(tmp_path, [{"text": LONG_REPLY}], delay=0.01)
    try:
        k.ok("%%run_assistant -t q -o a\nfirst")
        k.ok("%%run_assistant -t q -o b\nsecond")
        k.ok(textwrap.dedent("""
            from IPython import get_ipython
            magics = get_ipython().magics_manager.registry["RunAssistantMagics"]
            task = magics._tails[next(key for key in magics._tails if key[1] == "q")]
            w = task.get_coro().cr_frame.f_locals["widget"]
            assert w.run["status"] == "waiting"
            w.stop()
        """))
        k.ok("import jupyter_runs as jr\nawait jr.wait_all()")
        assert k.value("[a.status, w.run['status']]") == ["completed", "cancelled"]
        texts = k.value("[m.text for m in __import__('jupyter_runs').Client().messages.list(a.thread_id, order='asc')]")
        assert texts == ["first", LONG_REPLY]  # nothing of the dropped run reached the thread
    finally:
        k.close()


def _classic_kernel(tmp_path: Path, folder: Path, notebook: str) -> tuple[object, object]:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    from jupyter_server.services.sessions.sessionmanager import SessionManager

    sessions = SessionManager(kernel_manager=MappingKernelManager(root_dir=str(tmp_path)), database_filepath=":memory:")
    # nbclassic's POST /api/sessions: {"path": "<folder>/<nb>", "name": "", ...}
    session_name = sessions.get_kernel_env(f"{folder.name}/{notebook}", "")["JPY_SESSION_NAME"]
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"delay": 0.0, "turns": [{"text": "noted"}]}))
    env = {**_env(), "JPY_SESSION_NAME": session_name, "JUPYTER_RUNS_STORE": str(tmp_path / "threads.sqlite3"),
           "JUPYTER_RUNS_MODEL": f"scripted:{script}"}
    return start_new_kernel(kernel_name="python3", cwd=str(folder), env=env)


def test_two_classic_notebooks_in_one_folder_get_their_own_threads(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    kernels = [_classic_kernel(tmp_path, folder, name) for name in ("a.ipynb", "b.ipynb")]
    try:
        ids = []
        for _km, kc in kernels:
            kc.execute_interactive("%load_ext jupyter_runs", timeout=60)
            kc.execute_interactive("%%run_assistant --wait -o r\nhello", timeout=60)
            out: list[str] = []
            kc.execute_interactive("print(__session__, r.thread_id)", timeout=60,
                                   output_hook=lambda m, out=out: out.append(m["content"].get("text", "")))
            session, thread_id = "".join(out).split()
            assert session.endswith(os.sep) and Path(session) == folder  # the folder, as nbclassic gives it
            ids.append(thread_id)
        assert ids[0] != ids[1]
    finally:
        for km, kc in kernels:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
