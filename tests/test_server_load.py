"""The served engine under load and through a crash.

Load: 50 streaming runs at once over HTTP, each with its own scripted reply, all complete with the
right text on the right thread (counts, never timings: those belong to ``bench/``).
Durability: the server is a subprocess killed with SIGKILL mid-run and restarted on the same store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx

import jupyter_runs as jr
from jupyter_runs.sse import SSEDecoder
from tests.served import ServerProcess

RUNS = 50


def reply_text(k: int) -> str:
    return f"Reply number {k} is for thread {k} only."


async def test_fifty_concurrent_streaming_runs_all_complete_with_their_own_messages(served, script):
    client = jr.AsyncClient(base_url=served.url, api_key=served.api_key)
    try:
        async def one(k: int) -> tuple[str, str, str, list[tuple[str, str]]]:
            asst = await client.assistants.create(model=script([{"text": reply_text(k)}], delay=0.005))
            thread = await client.threads.create(
                messages=[{"role": "user", "content": f"question {k}"}])
            stream = await client.runs.create(thread.id, assistant_id=asst.id, stream=True)
            deltas: list[str] = []
            run = await stream.stream_async(
                on_message_delta=lambda d: deltas.append(d.delta.content[0].text.value), env={})
            stored = await client.messages.list(thread.id, order="asc").to_list()
            return run.status, "".join(deltas), run.thread_id, [(m.role, m.text) for m in stored]

        results = await asyncio.gather(*(one(k) for k in range(RUNS)), return_exceptions=True)
    finally:
        await client.aclose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert sum(1 for status, *_ in results if status == "completed") == RUNS
    for k, (_, streamed, _, stored) in enumerate(results):
        assert streamed == reply_text(k)
        assert stored == [("user", f"question {k}"), ("assistant", reply_text(k))]
    assert len({thread_id for _, _, thread_id, _ in results}) == RUNS


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_sigkill_mid_run_loses_nothing_completed_and_fails_the_interrupted_run(tmp_path, script):
    store = tmp_path / "store.sqlite3"
    quick = script([{"text": "Finished before the crash."}])
    slow = script([{"text": " ".join(f"w{i}" for i in range(2000))}], delay=0.01)

    server = ServerProcess("--store", str(store)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            done_thread = _post(api, "/threads", {"messages": [{"role": "user", "content": "first"}]})
            finished = api.post(f"/threads/{done_thread['id']}/runs", json={
                "assistant_id": _post(api, "/assistants", {"model": quick})["id"], "stream": True})
            assert "event: thread.run.completed" in finished.text
            busy_thread = _post(api, "/threads", {"messages": [{"role": "user", "content": "second"}]})
            slow_asst = _post(api, "/assistants", {"model": slow})
            deltas = 0
            run_id = None
            with api.stream("POST", f"/threads/{busy_thread['id']}/runs",
                            json={"assistant_id": slow_asst["id"], "stream": True}) as response:
                decoder = SSEDecoder()
                for chunk in response.iter_bytes():
                    for event in decoder.feed(chunk):
                        if event.event == "thread.run.created":
                            run_id = event.data["id"]
                        deltas += event.event == "thread.message.delta"
                    if deltas >= 5:
                        server.kill()  # mid-reply, no shutdown code runs
                        break
    finally:
        server.stop()
    assert run_id is not None and deltas >= 5

    server = ServerProcess("--store", str(store)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            first = api.get(f"/threads/{done_thread['id']}/messages", params={"order": "asc"}).json()
            assert [(m["role"], m["status"], m["content"][0]["text"]["value"]) for m in first["data"]] == [
                ("user", "completed", "first"), ("assistant", "completed", "Finished before the crash.")]
            runs = api.get(f"/threads/{done_thread['id']}/runs").json()["data"]
            assert [r["status"] for r in runs] == ["completed"]

            run = api.get(f"/threads/{busy_thread['id']}/runs/{run_id}").json()
            assert run["status"] in ("failed", "expired")
            assert "interrupted" in run["last_error"]["message"]
            second = api.get(f"/threads/{busy_thread['id']}/messages").json()["data"]
            assert ("user", "second") in [(m["role"], m["content"][0]["text"]["value"]) for m in second]
            assert all(m["status"] != "in_progress" for m in second)
            steps = api.get(f"/threads/{busy_thread['id']}/runs/{run_id}/steps").json()["data"]
            assert all(s["status"] != "in_progress" for s in steps)
            # the thread is usable again: a new run on it completes
            again = _post(api, f"/threads/{busy_thread['id']}/runs", {
                "assistant_id": _post(api, "/assistants", {"model": quick})["id"], "stream": False})
            assert again["status"] in ("queued", "in_progress", "completed")
    finally:
        server.stop()
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

