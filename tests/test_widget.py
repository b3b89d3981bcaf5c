"""RunWidget, Python side: snapshots from streams, the delta transport's budget, the saved
fallback, approvals and Stop, and that no secret reaches anything the widget sends or saves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_runs.sse import iter_events
from jupyter_runs.widget import RunWidget
from jupyter_runs.wire import Event

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"


class FakeClock:
    """Simulated stream time: the flush pacing reads this, so counts don't depend on the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Captured(RunWidget):
    """A RunWidget that records the custom messages it would send to the front end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(*args, **kwargs)

    def send(self, content: Any, buffers: Any = None) -> None:
        self.sent.append(content)


def example(name: str) -> list[Event]:
    return list(iter_events([(EXAMPLES / f"{name}.sse").read_bytes()]))


def delta(msg_id: str, text: str) -> Event:
    return Event("thread.message.delta", {"id": msg_id, "object": "thread.message.delta",
                                          "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text}}]}})


def run_event(status: str, **extra: Any) -> Event:
    return Event(f"thread.run.{status}", {"id": "run_1", "object": "thread.run", "status": status,
                                          "model": "scripted:demo", **extra})


def message_event(status: str, text: str = "") -> Event:
    content = [{"type": "text", "text": {"value": text, "annotations": []}}] if text else []
    return Event(f"thread.message.{status}", {"id": "msg_1", "object": "thread.message", "role": "assistant",
                                              "status": status, "content": content})


def front_end_text(widget: Captured, sent: list[dict[str, Any]]) -> str:
    """What a view that joined now would show: the snapshot plus the deltas after its seq."""
    text = "".join(p["text"]["value"] for m in widget.messages for p in m.get("content", [])
                   if p.get("type") == "text")
    for msg in sent:
        if msg["seq"] > widget.meta["seq"]:
            for d in msg["deltas"]:
                text += "".join(p["text"]["value"] for p in d["delta"].get("content", []))
    return text


def test_spec_function_stream_gives_completed_snapshot() -> None:
    widget = Captured(clock=FakeClock())
    for event in example("createThreadAndRun.streaming-with-functions") + example("submitToolOutputs.streaming"):
        widget.feed(event)
    widget.finish()
    assert widget.run["status"] == "completed"
    assert widget.run["usage"]["total_tokens"] > 0
    assert [m["role"] for m in widget.messages] == ["assistant"]
    assert "70 degrees" in widget.messages[0]["content"][0]["text"]["value"]
    steps = {s["type"]: s for s in widget.steps}
    call = steps["tool_calls"]["step_details"]["tool_calls"][0]
    assert call["function"]["name"] == "get_current_weather"
    assert call["function"]["output"] == "70 degrees and sunny."
    assert set(widget.meta["timings"]) == {s["id"] for s in widget.steps}
    assert widget.meta["done"] is True


def test_sharing_events_with_another_fold_never_doubles_text() -> None:
    """RunStream folds the very same event objects before the widget sees them."""
    from jupyter_runs.events import RunState, fold

    theirs = RunState()
    widget = Captured(clock=FakeClock())
    expected = ""
    for event in example("createThreadAndRun.streaming-with-functions"):
        fold(theirs, event.event, event.data)
        widget.feed(event)
        if event.event == "thread.run.step.delta":
            calls = event.data["delta"]["step_details"]["tool_calls"]
            expected += "".join(c["function"].get("arguments", "") for c in calls)
        if event.event == "thread.run.step.in_progress":
            widget._publish()  # a boundary mid-stream, while deltas keep coming
    step = next(iter(theirs.steps.values()))
    ours = widget._fold.steps[step["id"]]
    name = ours["step_details"]["tool_calls"][0]["function"]["name"]
    assert name == "get_current_weather"
    assert ours["step_details"]["tool_calls"][0]["function"]["arguments"] == expected
    assert step["step_details"]["tool_calls"][0]["function"]["name"] == "get_current_weather"


def test_run_is_reduced_to_display_fields() -> None:
    widget = Captured()
    for event in example("createRun.streaming"):
        widget.feed(event)
    widget.finish()
    assert widget.run["status"] == "completed"
    # Instructions, tool schemas and metadata never enter widget state.
    assert not {"instructions", "tools", "metadata"} & set(widget.run)
    assert widget.messages[0]["content"][0]["text"]["value"].startswith("Hello")


def test_long_reply_delta_budget_and_flush_rate() -> None:
    """50,000 characters in 10,000 deltas over 20 s of simulated time: bytes and flushes bounded."""
    clock = FakeClock()
    widget = Captured(clock=clock)
    widget.feed(run_event("in_progress"))
    widget.feed(message_event("in_progress"))
    chunks = [f"w{i % 1000:03d} " for i in range(10_000)]
    reply = "".join(chunks)
    assert len(reply) == 50_000
    for chunk in chunks:
        clock.now += 0.002  # 500 deltas a second
        widget.feed(delta("msg_1", chunk))
    sim_seconds = 10_000 * 0.002
    batches = [m for m in widget.sent if m["type"] == "deltas"]
    payload = sum(len(json.dumps(m, ensure_ascii=False).encode()) for m in batches)
    text_sent = "".join(p["text"]["value"] for m in batches for d in m["deltas"]
                        for p in d["delta"]["content"])

    assert len(batches) <= 30 * sim_seconds + 1
    assert len(batches) >= 0.9 * 30 * sim_seconds  # coalesced, not starved
    assert payload <= 2 * 50_000 + 200 * len(batches)
    assert payload - len(text_sent.encode()) <= 200 * len(batches)  # per-flush overhead is bounded
    assert [m["seq"] for m in batches] == list(range(1, len(batches) + 1))
    # At most one flush interval is still held; the next boundary's snapshot carries it.
    shown = front_end_text(widget, widget.sent)
    assert reply.startswith(shown) and len(reply) - len(shown) <= 5 * 17
    widget.feed(message_event("completed", reply))
    widget.feed(run_event("completed"))
    widget.finish()
    assert front_end_text(widget, widget.sent) == reply


def test_a_burst_at_one_instant_is_one_flush() -> None:
    widget = Captured(clock=FakeClock())
    widget.feed(message_event("in_progress"))
    for _ in range(500):
        widget.feed(delta("msg_1", "ab"))
    assert len(widget.sent) == 1
    assert widget.sent[0]["deltas"][0]["delta"]["content"][0]["text"]["value"] == "ab"
    widget.finish()
    assert front_end_text(widget, widget.sent) == "ab" * 500


def test_snapshot_seq_lets_a_late_view_catch_up_without_duplicates() -> None:
    clock = FakeClock()
    widget = Captured(clock=clock)
    widget.feed(message_event("in_progress"))
    for i in range(100):
        clock.now += 0.05 if i % 2 else 0.01  # some deltas flush at once, some are coalesced
        widget.feed(delta("msg_1", f"{i},"))
        if i == 50:
            widget.feed(run_event("in_progress"))  # a coarse boundary mid-stream
            seen_at_boundary = widget.meta["seq"]
            assert seen_at_boundary == widget.sent[-1]["seq"]
    expected = "".join(f"{i}," for i in range(100))
    assert front_end_text(widget, widget.sent) == expected
    # The front end asks for a snapshot after a gap; the answer covers everything so far.
    widget._handle_custom_msg({"type": "sync"}, [])
    assert front_end_text(widget, []) == expected


async def test_trailing_deltas_flush_on_the_loop_without_another_event() -> None:
    clock = FakeClock()
    widget = Captured(clock=clock, max_flushes=200)
    widget.feed(message_event("in_progress"))
    widget.feed(delta("msg_1", "first "))
    widget.feed(delta("msg_1", "second"))  # within the interval: held
    assert len(widget.sent) == 1
    clock.now += 1
    for _ in range(100):
        await asyncio.sleep(0.005)
        if len(widget.sent) == 2:
            break
    assert widget.sent[1]["deltas"][0]["delta"]["content"][0]["text"]["value"] == "second"


def test_live_bundle_carries_the_view_and_text_fallbacks() -> None:
    widget = Captured()
    widget.set_prompt("What's the weather in SF?")
    widget.feed(run_event("in_progress"))
    data, _ = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "What's the weather in SF?" in data["text/plain"]
    assert "in_progress" in data["text/markdown"]


def test_finished_run_becomes_a_static_bundle_and_the_widget_closes() -> None:
    widget = Captured()
    widget.set_prompt("What's the weather in SF?")
    for event in example("createThreadAndRun.streaming-with-functions") + example("submitToolOutputs.streaming"):
        widget.feed(event)
    assert widget.comm is not None
    widget.finish()
    assert widget.comm is None  # closed: nothing of ours stays in the front end's widget state
    assert widget.run["status"] == "completed"  # handles still read the final state
    data, _ = widget._repr_mimebundle_()
    assert set(data) == {"text/html", "text/markdown", "text/plain"}
    for mime in ("text/plain", "text/html"):
        text = data[mime]
        assert "weather in SF?" in text
        assert "70 degrees Fahrenheit and sunny" in text
        assert "get_current_weather" in text
    assert "completed" in data["text/plain"]
    assert "1 tool call" in data["text/markdown"]
    assert "data-status='completed'" in data["text/html"]


def test_markdown_fallback_is_literal_text() -> None:
    widget = Captured()
    widget.feed(message_event("completed", "<script>alert(1)</script>\n\n```html\n<b>x</b>\n```"))
    widget.feed(run_event("completed"))
    md = widget.to_markdown()
    assert "<script>" not in md and "<b>" not in md
    assert "&lt;script&gt;" in md


def test_tool_record_adds_stdout_displays_and_timing() -> None:
    from jupyter_runs.tools import ToolCallRecord

    widget = Captured()
    widget.feed(run_event("in_progress"))
    rec = ToolCallRecord("call_1", "load_sales", {"region": "north"}, output="[1, 2]", stdout="loading\n",
                         displays=[{"text/plain": "chart"}])
    rec.started_at, rec.ended_at = widget._wall0 + 0.5, widget._wall0 + 1.25
    widget.record_tool_call(rec)
    entry = widget.records["call_1"]
    assert entry["stdout"] == "loading\n"
    assert entry["displays"] == [{"text/plain": "chart"}]
    assert entry["ended_at"] - entry["started_at"] == pytest.approx(0.75)


async def test_approval_card_answers_approve_with_edits_and_deny() -> None:
    widget = Captured()
    first = asyncio.ensure_future(widget.request_approval(
        {"tool_call_id": "call_a", "name": "delete_rows", "arguments": '{"table": "t"}'}))
    second = asyncio.ensure_future(widget.request_approval(
        {"tool_call_id": "call_b", "name": "send_mail", "arguments": {"to": "x"}}))
    await asyncio.sleep(0)
    assert [(a["id"], a["status"]) for a in widget.approvals] == [("call_a", "pending"), ("call_b", "pending")]
    widget._handle_custom_msg({"type": "approve", "id": "call_a", "arguments": '{"table": "t2"}'}, [])
    widget._handle_custom_msg({"type": "deny", "id": "call_b", "reason": "no mail"}, [])
    a, b = await first, await second
    assert (a.approved, a.arguments) == (True, {"table": "t2"})
    assert (b.approved, b.reason) == (False, "no mail")
    assert [a["status"] for a in widget.approvals] == ["approved", "denied"]


async def test_approve_with_broken_json_is_a_denial_not_a_crash() -> None:
    widget = Captured()
    pending = asyncio.ensure_future(widget.request_approval({"tool_call_id": "c", "name": "f", "arguments": "{}"}))
    await asyncio.sleep(0)
    widget._handle_custom_msg({"type": "approve", "id": "c", "arguments": "{nope"}, [])
    decision = await pending
    assert decision.approved is False
    assert "not valid JSON" in decision.reason


async def test_stop_click_runs_sync_and_async_callbacks() -> None:
    widget = Captured()
    calls: list[str] = []

    async def cancel() -> None:
        calls.append("async")

    widget.on_stop(lambda: calls.append("sync"))
    widget.on_stop(cancel)
    widget._handle_custom_msg({"type": "stop"}, [])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls == ["sync", "async"]


async def test_drives_a_run_stream_in_the_background_with_no_secret_anywhere(replay: Any) -> None:
    from jupyter_runs.client import AsyncClient

    secret = "sk-test-DO-NOT-LEAK-1234567890"
    replay.stream((EXAMPLES / "createRun.streaming.sse").read_bytes())
    client = AsyncClient(base_url=replay.url, api_key=secret)
    stream = await client.runs.create("thread_123", assistant_id="asst_123", stream=True)
    widget = Captured(stream)
    assert widget.task is not None  # a strong reference to the driving task
    await asyncio.wait_for(widget.task, 10)
    assert widget.run["status"] == "completed"
    assert widget.messages[0]["content"][0]["text"]["value"].startswith("Hello")
    state = json.dumps(widget.get_state(), default=str)
    sent = json.dumps(widget.sent)
    data, _ = widget._repr_mimebundle_()
    for blob in (state, sent, json.dumps(data), repr(widget)):
        assert secret not in blob
        assert replay.url not in blob
    assert replay.received()[0].headers.get("authorization") == f"Bearer {secret}"  # it was used


def test_without_a_running_loop_it_streams_synchronously(replay: Any) -> None:
    from jupyter_runs.client import Client

    replay.stream((EXAMPLES / "createRun.streaming.sse").read_bytes())
    client = Client(base_url=replay.url, api_key="sk-x")
    widget = Captured(client.runs.create("thread_123", assistant_id="asst_123", stream=True))
    assert widget.task is None
    assert widget.run["status"] == "completed"


def test_driver_error_shows_as_a_failed_run() -> None:
    class Broken:
        def until_done(self, **kwargs: Any) -> None:
            kwargs["on_event"](run_event("in_progress"))
            raise ConnectionError("server went away")

        async def cancel_async(self) -> None:
            pass

    widget = Captured(Broken())
    assert widget.run["status"] == "failed"
    assert "server went away" in widget.run["last_error"]["message"]
    assert "server went away" in widget.to_text()


def test_unknown_events_and_tuples_are_accepted() -> None:
    widget = Captured()
    widget.feed(("thread.run.something_new", {"id": "x"}))
    widget.feed(("thread.run.in_progress", {"id": "run_1", "status": "in_progress"}))
    assert widget.run["status"] == "in_progress"


def test_a_replayed_run_shows_its_stored_timings_and_prompt() -> None:
    from jupyter_runs.history import run_events

    run = {"id": "run_1", "object": "thread.run", "status": "completed", "created_at": 100,
           "completed_at": 112, "model": "m"}
    steps = [{"id": "step_1", "object": "thread.run.step", "type": "message_creation", "status": "completed",
              "created_at": 103, "completed_at": 110,
              "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_2"}}}]
    messages = [
        {"id": "msg_1", "object": "thread.message", "role": "user", "status": "completed", "created_at": 99,
         "content": [{"type": "text", "text": {"value": "Why?", "annotations": []}}]},
        {"id": "msg_2", "object": "thread.message", "role": "assistant", "status": "completed", "created_at": 103,
         "content": [{"type": "text", "text": {"value": "Because.", "annotations": []}}]},
    ]
    widget = Captured()
    for event in run_events(run, steps, messages):
        widget.feed(event)
    widget.finish()
    assert widget.meta["timings"] == {"step_1": [3, 10]}
    assert widget.meta["elapsed"] == 12
    assert widget.to_text().startswith("You: Why?")
    assert "Because." in widget.to_markdown()


def test_malformed_events_are_ignored_not_raised() -> None:
    widget = Captured()
    widget.feed(("thread.message.delta", "not a dict"))
    widget.feed(("thread.run.step.completed", {"no": "id"}))
    widget.feed(("thread.run.completed", None))
    assert widget.run is None


def test_stop_button_is_offered_only_when_something_listens() -> None:
    widget = Captured()
    assert widget.meta.get("stoppable") is False
    widget.on_stop(lambda: None)
    assert widget.meta["stoppable"] is True
