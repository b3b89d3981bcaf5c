"""Run / RunStream drivers on the embedded engine: the seed's semantics and the sync facade."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import jupyter_runs as jr
from jupyter_runs.events import RunState, fold, message_text
from jupyter_runs.history import run_events
from jupyter_runs.runs import default_env
from jupyter_runs.tools import Namespace
from jupyter_runs.wire import Run as RunObject


def script(tmp_path: Path, turns: list[dict[str, Any]], delay: float = 0.0, name: str = "s.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"delay": delay, "turns": turns}))
    return f"scripted:{path}"


def weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature_c": 18}


@pytest.fixture
def client() -> jr.Client:
    return jr.Client(store=":memory:")


def _start(client: jr.Client, model: str, text: str = "hi", **kw: Any) -> tuple[Any, Any]:
    asst = client.assistants.create(model=model, **kw)
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content=text)
    return asst, thread


def test_run_reads_every_seed_field_as_an_attribute(client: jr.Client, tmp_path: Path) -> None:
    asst, thread = _start(client, script(tmp_path, [{"text": "hello there"}]))
    run = jr.Run(client, thread.id, assistant_id=asst.id)
    run.wait(env={})
    for field in ("id", "created_at", "thread_id", "assistant_id", "status", "required_action",
                  "last_error", "started_at", "expires_at", "cancelled_at", "failed_at", "completed_at",
                  "incomplete_details", "model", "instructions", "tools", "metadata", "usage",
                  "temperature", "top_p", "max_prompt_tokens", "max_completion_tokens",
                  "truncation_strategy", "tool_choice", "response_format"):
        getattr(run, field)
    assert run.status == "completed" and run.thread_id == thread.id
    again = jr.Run(client, thread.id, run_id=run.id)
    assert again.retrieve_status() == "completed"
    assert again.thread().id == thread.id and again.assistant().id == asst.id
    assert [s.type for s in again.list_steps()] == ["message_creation"]
    with pytest.raises(AttributeError):
        run.no_such_field  # noqa: B018


def test_wait_does_tool_calls_from_env_and_returns_completed(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
                              {"text": "sunny"}])
    asst, thread = _start(client, model, tools=[weather])
    run = client.runs.create(thread.id, assistant_id=asst.id)
    assert run.wait(env={"weather": weather}).status == "completed"
    step = [s for s in run.list_steps() if s.type == "tool_calls"][0]
    assert json.loads(step.step_details.tool_calls[0].function.output) == {"city": "Paris", "temperature_c": 18}


def test_failed_run_raises_run_error_naming_status_and_code(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"error": {"code": "rate_limit_exceeded", "message": "slow down"}}])
    asst, thread = _start(client, model)
    run = client.runs.create(thread.id, assistant_id=asst.id)
    with pytest.raises(jr.RunError) as info:
        run.wait(env={})
    assert info.value.status == "failed"
    assert "rate_limit_exceeded" in str(info.value) and run.id in str(info.value)


def test_wait_timeout_keeps_the_run_identified(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": " ".join(["word"] * 400)}], delay=0.02)
    asst, thread = _start(client, model)
    run = client.runs.create(thread.id, assistant_id=asst.id)
    with pytest.raises(jr.RunTimeoutError) as info:
        run.wait(env={}, timeout=0.2, poll_interval=0.05)
    assert info.value.run["id"] == run.id and info.value.status in ("queued", "in_progress")
    run.cancel()
    with pytest.raises(jr.RunError):
        run.wait(env={}, poll_interval=0.05)
    assert run.status == "cancelled"


def test_stream_callbacks_see_deltas_messages_and_steps(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]},
                              {"text": "It is cold in Oslo."}])
    asst, thread = _start(client, model, tools=[weather])
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    seen: dict[str, list[Any]] = {"delta": [], "message": [], "step": [], "event": [], "tool": []}
    final = stream.until_done(
        on_message_delta=seen["delta"].append, on_message=seen["message"].append,
        on_run_step=seen["step"].append, on_event=seen["event"].append,
        on_tool_call=seen["tool"].append, env={"weather": weather},
    )
    assert final.status == "completed"
    text = "".join(d.delta.content[0].text.value for d in seen["delta"])
    assert text == "It is cold in Oslo."
    assert stream.event_data["messages"][-1].text == text
    assert [r.name for r in seen["tool"]] == ["weather"]
    assert {s.type for s in seen["step"]} == {"tool_calls", "message_creation"}
    assert seen["event"][-1].event == "done"


def test_callback_that_raises_stops_the_stream_and_cancels_the_run(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"text": " ".join(["word"] * 300)}], delay=0.01)
    asst, thread = _start(client, model)
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)

    def boom(delta: Any) -> None:
        raise ValueError("callback broke")

    with pytest.raises(ValueError, match="callback broke"):
        stream.until_done(on_message_delta=boom, env={})
    run = jr.Run(client, thread.id, run_id=stream.id)
    for _ in range(100):
        if run.retrieve_status() == "cancelled":
            break
    assert run.status == "cancelled"


def test_tool_interrupt_cancels_the_run(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "stop_me", "arguments": {}}]}, {"text": "never"}])

    def stop_me() -> str:
        """Simulates Ctrl-C while a tool runs."""
        raise KeyboardInterrupt

    asst, thread = _start(client, model, tools=[stop_me])
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    with pytest.raises(KeyboardInterrupt):
        stream.until_done(env={"stop_me": stop_me})
    assert jr.Run(client, thread.id, run_id=stream.id).retrieve_status() == "cancelled"


async def test_sync_wait_on_a_stream_driven_by_this_loop_raises_at_once(tmp_path: Path) -> None:
    aclient = jr.AsyncClient(store=":memory:")
    model = script(tmp_path, [{"text": " ".join(["word"] * 200)}], delay=0.005)
    asst = await aclient.assistants.create(model=model)
    thread = await aclient.threads.create()
    await aclient.messages.create(thread.id, content="hi")
    stream = await aclient.runs.create(thread.id, assistant_id=asst.id, stream=True)
    task = asyncio.ensure_future(stream.stream_async(env={}))
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="wait_async"):
        stream.wait()
    assert not task.done()
    run = await stream.wait_async()  # joins the running driver instead of streaming twice
    assert run.status == "completed" and task.done()
    assert message_text(stream.event_data["messages"][-1]) == " ".join(["word"] * 200)


async def test_sync_client_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    asyncio.get_running_loop()  # as in a notebook cell
    client = jr.Client(store=":memory:")
    asst, thread = _start(client, script(tmp_path, [{"text": "from a cell"}]))
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    assert stream.until_done(env={}).status == "completed"
    assert stream.event_data["messages"][-1].text == "from a cell"


def test_default_env_outside_ipython_is_the_callers_globals_exposing_nothing() -> None:
    env = default_env(0)
    assert env.ns is globals()  # where exposed tools are looked up again (redefinitions)
    assert isinstance(env, Namespace)  # but a name in it is never enough to run it


def test_replayed_history_rebuilds_the_streamed_run(client: jr.Client, tmp_path: Path) -> None:
    model = script(tmp_path, [{"tool_calls": [{"name": "weather", "arguments": {"city": "Rome"}}]},
                              {"text": "Warm in Rome."}])
    asst, thread = _start(client, model, tools=[weather])
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    stream.until_done(env={"weather": weather})
    steps = jr.Run(client, thread.id, run_id=stream.id).list_steps(order="asc")
    messages = client.messages.list(thread.id, order="asc").to_list()
    state = RunState()
    for event in run_events(stream.data, steps, messages):
        fold(state, event.event, event.data)
    assert state.run["status"] == "completed"
    assert [message_text(m) for m in state.messages.values()] == ["hi", "Warm in Rome."]
    assert [s["type"] for s in state.steps.values()] == [s["type"] for s in stream.state.steps.values()]
    assert isinstance(stream.data, RunObject)


# -- issue #13 -------------------------------------------------------------------------------------
def test_a_finished_stream_shows_what_modify_and_retrieve_return(client: jr.Client, tmp_path: Path) -> None:
    asst, thread = _start(client, script(tmp_path, [{"text": "done"}]))
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)
    stream.until_done(env={})
    assert stream.modify(metadata={"k": "v"}).metadata == {"k": "v"}
    assert stream.retrieve().metadata == {"k": "v"} and stream.status == "completed"


async def test_async_callbacks_are_awaited_in_event_order(tmp_path: Path) -> None:
    client = jr.AsyncClient(store=":memory:")
    asst = await client.assistants.create(model=script(tmp_path, [{"text": "one two three"}]))
    thread = await client.threads.create()
    await client.messages.create(thread["id"], role="user", content="count")
    stream = await client.runs.create(thread["id"], assistant_id=asst["id"], stream=True)
    seen: list[str] = []

    async def on_message_delta(delta: Any) -> None:
        await asyncio.sleep(0)
        seen.append(delta.delta.content[0].text.value)

    async def on_message(message: Any) -> None:
        seen.append(f"[{message.status}]")

    await stream.stream_async(on_message_delta=on_message_delta, on_message=on_message, env={})
    text = "".join(s for s in seen if not s.startswith("["))
    assert text == "one two three"
    assert seen[-1] == "[completed]"


def test_until_done_refuses_an_async_callback_before_the_run_streams(client: jr.Client, tmp_path: Path) -> None:
    asst, thread = _start(client, script(tmp_path, [{"text": "hi"}]))
    stream = client.runs.create(thread.id, assistant_id=asst.id, stream=True)

    async def on_message_delta(delta: Any) -> None:
        pass

    with pytest.raises(TypeError, match="stream_async"):
        stream.until_done(on_message_delta=on_message_delta, env={})
    assert stream.until_done(env={}).status == "completed"  # nothing was consumed by the refusal
