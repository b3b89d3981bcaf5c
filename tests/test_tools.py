"""ToolRunner on its own: allowlist, validation and coercion, execution, timeouts, output encoding,
capture, approval. Runs are plain dicts here; tests/test_tools_e2e.py goes through the engine."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal, TypedDict

import pydantic
import pytest

import jupyter_runs as jr
from jupyter_runs.tools import (
    ApprovalDecision,
    ApprovalRequest,
    Namespace,
    ToolCallRecord,
    ToolRunner,
    tool_param,
)
from jupyter_runs.tools.encode import cap, encode


def run_for(*fns: Any) -> dict[str, Any]:
    return {"tools": [tool_param(f) for f in fns]}


def call(name: str, arguments: Any = None, call_id: str = "call_1") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def one(runner: ToolRunner, run: dict[str, Any], name: str, arguments: Any = None) -> ToolCallRecord:
    [record] = runner.run_sync(run, [call(name, arguments)])
    return record


class Item(pydantic.BaseModel):
    sku: str
    qty: int = 1


class Where(TypedDict):
    city: str


class Region(enum.Enum):
    NORTH = "north"
    SOUTH = "south"


@dataclasses.dataclass
class Window:
    start: int
    end: int = 10


def load_sales(region: Literal["north", "south"], limit: int = 3) -> dict[str, Any]:
    """Sales of one region."""
    return {"region": region, "limit": limit}


def typed(region: Region, window: Window, ratio: float, tags: set[str], pair: tuple[int, str]) -> str:
    return repr((region, window, ratio, sorted(tags), pair))


RUN = run_for(load_sales, typed)
ENV = {"load_sales": load_sales, "typed": typed}


# ---- the allowlist


def test_unknown_tool_is_refused_with_the_available_names():
    rec = one(ToolRunner(env=ENV), RUN, "drop_tables")
    assert rec.status == "failed"
    assert rec.output == "error: unknown tool 'drop_tables'; the available tools are: load_sales, typed"


def test_declared_but_not_exposed_is_refused():
    rec = one(ToolRunner(env={}), RUN, "load_sales", {"region": "north"})
    assert rec.status == "failed" and "not exposed" in rec.output


@pytest.mark.parametrize("name", ["eval", "exec", "open", "print", "os", "Window", "_private"])
def test_builtins_modules_classes_and_private_names_never_run(name):
    def _private() -> str:
        return "ran"

    env = {"eval": eval, "exec": exec, "open": open, "print": print, "os": os, "Window": Window,
           "_private": _private}
    run = {"tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]}
    rec = one(ToolRunner(env=env, tools=[_private]), run, name, {})
    assert rec.status == "failed" and "not available" in rec.output
    assert "ran" not in rec.output


def test_tools_list_exposes_without_env_and_env_wins_for_redefinitions():
    def greet(who: str) -> str:
        return f"hello {who}"

    run = run_for(greet)
    assert one(ToolRunner(tools=[greet]), run, "greet", {"who": "a"}).output == "hello a"

    def greet(who: str) -> str:
        return f"hi {who}"

    assert one(ToolRunner(env={"greet": greet}, tools=[]), run, "greet", {"who": "a"}).output == "hi a"


def test_changed_signature_is_reported_and_not_run():
    calls = []

    def area(w: int) -> int:
        return w

    run = run_for(area)

    def area(w: int, h: int) -> int:
        calls.append((w, h))
        return w * h

    rec = one(ToolRunner(env={"area": area}), run, "area", {"w": 2, "h": 3})
    assert rec.status == "failed" and calls == []
    assert "changed since this run started" in rec.output and '"h"' in rec.output


# ---- validation and coercion


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"region": "N"}, "argument 'region' must be one of 'north', 'south'; got 'N'"),
        ({}, "missing required argument 'region'"),
        ({"region": "north", "extra": 1}, "unexpected argument 'extra' (the parameters are: region, limit)"),
        ({"region": "north", "limit": "many"}, "argument 'limit' must be an integer; got 'many'"),
        ({"region": "north", "limit": 2.5}, "argument 'limit' must be an integer; got 2.5"),
        ("{not json", "are not valid JSON"),
        ("[1, 2]", "must be a JSON object; got list"),
    ],
)
def test_bad_arguments_become_outputs_the_model_can_act_on(arguments, message):
    rec = one(ToolRunner(env=ENV), RUN, "load_sales", arguments)
    assert rec.status == "failed" and message in rec.output


def test_near_miss_values_are_coerced():
    rec = one(ToolRunner(env=ENV), RUN, "load_sales", {"region": "south", "limit": "7"})
    assert json.loads(rec.output) == {"region": "south", "limit": 7}
    rec = one(ToolRunner(env=ENV), RUN, "load_sales", {"region": "south", "limit": 4.0})
    assert json.loads(rec.output) == {"region": "south", "limit": 4}


def test_arguments_become_python_types():
    args = {"region": "north", "window": {"start": 1}, "ratio": 2, "tags": ["b", "a"], "pair": [1, "x"]}
    rec = one(ToolRunner(env=ENV), RUN, "typed", args)
    assert rec.output == repr((Region.NORTH, Window(1, 10), 2.0, ["a", "b"], (1, "x")))


def test_nested_errors_name_the_path():
    args = {"region": "north", "window": {"end": 1, "x": 0}, "ratio": 1, "tags": [1], "pair": [1]}
    rec = one(ToolRunner(env=ENV), RUN, "typed", args)
    assert "argument 'window' has unexpected field 'x'" in rec.output
    assert "argument 'window' is missing required field 'start'" in rec.output
    assert "argument 'tags[0]' must be a string; got 1" in rec.output
    assert "argument 'pair' must have exactly 2 items; got 1" in rec.output


def test_strict_tool_treats_null_as_the_default():
    @jr.tool(strict=True)
    def page(query: str, size: int = 20, cursor: str | None = "start") -> str:
        return f"{query}:{size}:{cursor}"

    rec = one(ToolRunner(tools=[page]), run_for(page), "page", {"query": "q", "size": None, "cursor": None})
    assert rec.output == "q:20:None"


# ---- execution


def test_exceptions_become_error_outputs_without_traceback_by_default():
    def boom(n: int) -> int:
        raise ValueError(f"bad n {n}")

    rec = one(ToolRunner(tools=[boom]), run_for(boom), "boom", {"n": 3})
    assert (rec.status, rec.output, rec.error) == ("failed", "error: ValueError: bad n 3", "ValueError: bad n 3")
    rec = one(ToolRunner(tools=[boom], traceback=True), run_for(boom), "boom", {"n": 3})
    assert "Traceback" in rec.output and 'raise ValueError(f"bad n {n}")' in rec.output


def test_keyboard_interrupt_propagates():
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ToolRunner(tools=[stop]).run_sync(run_for(stop), [call("stop")])


def test_sync_tools_run_on_the_callers_thread():
    seen = []

    def where() -> str:
        seen.append(threading.current_thread())
        return "ok"

    ToolRunner(tools=[where]).run_sync(run_for(where), [call("where")])
    assert seen == [threading.current_thread()]


async def test_async_tools_of_one_action_run_concurrently_and_keep_call_order():
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def fetch(key: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            gate.set()
        await gate.wait()
        running -= 1
        return key.upper()

    calls = [call("fetch", {"key": k}, f"c{i}") for i, k in enumerate("abc")]
    records = await ToolRunner(tools=[fetch]).run_async(run_for(fetch), calls)
    assert peak == 3
    assert [(r.tool_call_id, r.output) for r in records] == [("c0", "A"), ("c1", "B"), ("c2", "C")]


async def test_async_tool_past_its_timeout_is_cancelled():
    cancelled = []

    @jr.tool(timeout=0.05)
    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    [rec] = await ToolRunner(tools=[slow]).run_async(run_for(slow), [call("slow")])
    assert rec.status == "failed" and "timed out after 0.05 s and was cancelled" in rec.output
    assert cancelled == [True]


def test_sync_tool_past_its_timeout_is_cut_on_the_main_thread():
    finished = []

    def busy() -> str:
        time.sleep(20)
        finished.append(True)
        return "late value"

    rec = one(ToolRunner(tools=[busy], timeout=0.2), run_for(busy), "busy")
    assert rec.status == "failed" and "timed out after 0.2 s" in rec.output and "late value" not in rec.output
    assert finished == []  # cut inside the sleep, not after it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_sync_tool_is_cut_when_the_runner_is_cancelled_from_another_thread():
    def busy() -> str:
        time.sleep(20)
        return "late value"

    runner = ToolRunner(tools=[busy], timeout=None)
    threading.Timer(0.2, runner.cancel).start()
    rec = one(runner, run_for(busy), "busy")
    assert rec.status == "failed" and "stopped" in rec.output and runner.stopped == "stopped"
    # A stopped runner runs nothing more.
    again = one(runner, run_for(busy), "busy")
    assert again.status == "failed" and "was not run" in again.output


async def test_sync_tool_in_run_async_runs_in_a_worker_and_is_cut_by_its_timeout():
    ticks = []
    where = []

    def busy() -> str:
        where.append(threading.current_thread() is threading.main_thread())
        time.sleep(20)
        return "late"

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(ticker())
    try:
        [rec] = await ToolRunner(tools=[busy], timeout=0.3).run_async(run_for(busy), [call("busy")])
    finally:
        task.cancel()
    assert rec.status == "failed" and "timed out after 0.3 s" in rec.output
    assert where == [False] and len(ticks) > 3  # the loop stayed free while the tool ran


def test_undeclared_tool_in_a_namespace_never_runs():
    ran = []

    def rmtree(path: str) -> None:
        ran.append(path)

    def safe() -> str:
        return "ok"

    run = run_for(rmtree, safe)
    runner = ToolRunner(env=Namespace({"rmtree": rmtree, "safe": safe}), tools=[safe])
    rec = one(runner, run, "rmtree", {"path": "/tmp/x"})
    assert ran == [] and rec.status == "failed" and "not exposed" in rec.output
    assert one(runner, run, "safe").output == "ok"

    def safe() -> str:  # a redefinition of an exposed tool takes effect
        return "new"

    runner.env.ns["safe"] = safe
    assert one(runner, run, "safe").output == "new"


def test_thread_safe_sync_tool_is_abandoned_at_its_timeout():
    release = threading.Event()

    @jr.tool(thread_safe=True, timeout=0.05)
    def stuck() -> str:
        release.wait(30)
        return "late"

    try:
        rec = one(ToolRunner(tools=[stuck]), run_for(stuck), "stuck")
    finally:
        release.set()
    assert rec.status == "failed" and "timed out after 0.05 s" in rec.output


def test_async_tools_in_run_sync_without_a_loop_use_a_private_loop():
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    rec = one(ToolRunner(tools=[double]), run_for(double), "double", {"x": 4})
    assert rec.output == "8"


async def test_async_tools_in_run_sync_inside_a_running_loop_use_the_portal():
    loops = []

    async def where() -> str:
        loops.append(asyncio.get_running_loop())
        return "ok"

    rec = one(ToolRunner(tools=[where]), run_for(where), "where")  # a sync wait inside a cell
    assert rec.output == "ok"
    from jupyter_runs import _portal

    assert loops == [_portal.loop()]


def test_on_record_sees_each_record_as_it_completes():
    seen: list[str] = []

    def a() -> str:
        return "A"

    runner = ToolRunner(tools=[a], on_record=lambda r: seen.append(r.tool_call_id))
    records = runner.run_sync(run_for(a), [call("a", {}, "x"), call("nope", {}, "y")])
    assert seen == ["x", "y"] and [r.status for r in records] == ["completed", "failed"]


# ---- output encoding


class Md:
    def _repr_markdown_(self) -> str:
        return "**md**"

    def _repr_html_(self) -> str:
        return "<b>html</b>"


class Html:
    def _repr_html_(self) -> str:
        return "<b>html</b>"


class Plain:
    def __repr__(self) -> str:
        return "Plain()"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("as is", "as is"),
        ({"a": [1, 2.5, None, True]}, '{"a": [1, 2.5, null, true]}'),
        (Window(1, 2), '{"start": 1, "end": 2}'),
        (Region.SOUTH, '"south"'),
        ((1, 2), "[1, 2]"),
        (Md(), "**md**"),
        (Html(), "<b>html</b>"),
        (Plain(), "Plain()"),
        ({"obj": Plain()}, "{'obj': Plain()}"),
        (float("nan"), "nan"),
    ],
    ids=["str", "json", "dataclass", "enum", "tuple", "markdown", "html", "repr", "not-json", "nan"],
)
def test_values_encode_for_the_model(value, text):
    assert encode(value, 16384) == (text, [])


def test_dataframe_becomes_a_bounded_markdown_table_with_its_shape():
    import pandas as pd

    small = pd.DataFrame({"region": ["north", "south"], "sales": [12, 7]})
    text, _ = encode(small, 16384)
    assert text.splitlines()[:4] == ["|  | region | sales |", "|---|---|---|", "| 0 | north | 12 |",
                                     "| 1 | south | 7 |"]
    assert text.endswith("[2 rows x 2 columns]")
    big = pd.DataFrame({f"c{i}": range(1000) for i in range(30)})
    text, _ = encode(big, 100_000)
    assert "[1000 rows x 30 columns (showing 30 rows, 20 columns)]" in text
    assert len(text.splitlines()) == 2 + 31 + 2
    series_text, _ = encode(pd.Series([1, 2], name="n"), 16384)
    assert "| n |" in series_text.splitlines()[0] and "[2 rows x 1 columns]" in series_text


def test_numpy_arrays_are_lists_or_summaries():
    import numpy as np

    assert encode(np.arange(4).reshape(2, 2), 16384)[0] == "[[0, 1], [2, 3]]"
    assert encode(np.float64(1.5), 16384)[0] == "1.5"
    text, _ = encode(np.zeros((100, 100)), 16384)
    assert text.startswith("array(shape=(100, 100), dtype=float64)") and "mean 0.0" in text


def test_figures_and_images_are_shown_to_the_user_and_described_to_the_model():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    fig.add_subplot().plot([1, 2, 3])
    text, displays = encode(fig, 16384)
    assert text == "[figure 640x480 shown to the user]"
    assert base64.b64decode(displays[0]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    text, displays = encode(Image.new("RGB", (32, 16)), 16384)
    assert text == "[image 32x16 shown to the user]" and displays[0]["image/png"]


def test_every_output_is_capped_with_a_visible_marker():
    text = cap("é" * 10_000, 1000)
    assert len(text.encode()) <= 1000
    assert text.endswith("[... truncated: 20000 bytes, showing the first 942 ...]")
    assert text.startswith("é" * 471)  # whole characters only
    assert cap("short", 1000) == "short"

    def huge() -> str:
        return "x" * 1_000_000

    rec = one(ToolRunner(tools=[huge], max_output=2048), run_for(huge), "huge")
    assert len(rec.output.encode()) <= 2048 and "truncated: 1000000 bytes" in rec.output


# ---- capture


@pytest.fixture
def shell() -> Iterator[Any]:
    """A real IPython shell, so display() goes through its display publisher; cleared afterwards so
    other tests see a plain interpreter again."""
    from IPython.core.interactiveshell import InteractiveShell

    existed = InteractiveShell.initialized()
    yield InteractiveShell.instance()
    if not existed:
        InteractiveShell.clear_instance()


def test_prints_and_displays_go_into_the_record_not_the_cell(shell, capsys):
    from IPython.display import Markdown, display

    def chatty() -> str:
        print("working...")
        print("careful", file=sys.stderr)
        display(Markdown("**done**"))
        return "ok"

    rec = one(ToolRunner(tools=[chatty]), run_for(chatty), "chatty")
    assert (rec.output, rec.stdout, rec.stderr) == ("ok", "working...\n", "careful\n")
    assert rec.displays == [{"text/plain": "<IPython.core.display.Markdown object>", "text/markdown": "**done**"}]
    out = capsys.readouterr()
    assert "working" not in out.out and "careful" not in out.err and "done" not in out.out
    print("after")
    assert capsys.readouterr().out == "after\n"
    assert "publish" not in vars(shell.display_pub)


async def test_concurrent_async_tools_capture_their_own_prints():
    gate = asyncio.Event()
    started = 0

    async def speak(word: str) -> None:
        nonlocal started
        print(f"{word}-1")
        started += 1
        if started == 2:
            gate.set()
        await gate.wait()
        print(f"{word}-2")

    records = await ToolRunner(tools=[speak]).run_async(
        run_for(speak), [call("speak", {"word": "a"}, "1"), call("speak", {"word": "b"}, "2")])
    assert [r.stdout for r in records] == ["a-1\na-2\n", "b-1\nb-2\n"]
    assert [r.output for r in records] == ["a-1\na-2\n", "b-1\nb-2\n"]  # printed text stands in for None


# ---- approval


def test_approval_policy_never_always_names_and_callable():
    ran = []

    def act(n: int) -> str:
        ran.append(n)
        return "done"

    deny = lambda request: ApprovalDecision(False, reason="not now")  # noqa: E731
    run = run_for(act)
    assert one(ToolRunner(tools=[act], approve="never", approver=deny), run, "act", {"n": 1}).output == "done"
    for policy in ("always", True, {"act"}, lambda name, args: args["n"] > 1):
        rec = one(ToolRunner(tools=[act], approve=policy, approver=deny), run, "act", {"n": 2})
        assert (rec.status, rec.output) == ("denied", "the user declined to run act: not now")
    assert one(ToolRunner(tools=[act], approve={"other"}, approver=deny), run, "act", {"n": 3}).output == "done"
    assert ran == [1, 3]


def test_approver_sees_the_call_and_may_edit_arguments():
    requests: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest) -> dict[str, Any]:
        requests.append(request)
        return {"approved": True, "arguments": {"region": "south", "limit": 1}}

    rec = one(ToolRunner(env=ENV, approve=True, approver=approver), RUN, "load_sales", {"region": "north"})
    assert requests == [ApprovalRequest("call_1", "load_sales", {"region": "north"})]
    assert json.loads(rec.output) == {"region": "south", "limit": 1}
    assert rec.arguments == {"region": "south", "limit": 1}


def test_edited_arguments_are_validated_again():
    rec = one(ToolRunner(env=ENV, approve=True, approver=lambda r: ApprovalDecision(True, {"region": "x"})),
              RUN, "load_sales", {"region": "north"})
    assert rec.status == "failed" and "must be one of 'north', 'south'; got 'x'" in rec.output


async def test_async_approver_is_awaited_and_missing_approver_denies_in_async():
    async def approver(request: ApprovalRequest) -> bool:
        await asyncio.sleep(0)
        return request.arguments["region"] == "north"

    runner = ToolRunner(env=ENV, approve=True, approver=approver)
    records = await runner.run_async(RUN, [call("load_sales", {"region": "north"}, "a"),
                                           call("load_sales", {"region": "south"}, "b")])
    assert [r.status for r in records] == ["completed", "denied"]
    [rec] = await ToolRunner(env=ENV, approve=True).run_async(RUN, [call("load_sales", {"region": "north"})])
    assert rec.status == "denied" and "pass ToolRunner(approver=...)" in rec.output


def test_without_an_approver_run_sync_asks_on_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\nn\n"))
    runner = ToolRunner(env=ENV, approve=True)
    records = runner.run_sync(RUN, [call("load_sales", {"region": "north"}, "a"),
                                    call("load_sales", {"region": "south"}, "b")])
    assert [r.status for r in records] == ["completed", "denied"]
    assert "Run tool load_sales(region='north')? [y/N]" in capsys.readouterr().out


def test_a_failing_approver_fails_only_its_call():
    def approver(request: ApprovalRequest) -> bool:
        raise RuntimeError("widget gone")

    rec = one(ToolRunner(env=ENV, approve=True, approver=approver), RUN, "load_sales", {"region": "north"})
    assert rec.status == "failed" and rec.output == "error: RuntimeError: widget gone"


def test_partials_of_builtins_are_not_exposable():
    import functools

    run = {"tools": [{"type": "function", "function": {"name": "ev", "parameters": {"type": "object"}}}]}
    rec = one(ToolRunner(env={"ev": functools.partial(eval, "1+1")}), run, "ev", {})
    assert "not available" in rec.output


async def test_keyboard_interrupt_in_an_async_tool_propagates_from_run_sync():
    async def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ToolRunner(tools=[stop]).run_sync(run_for(stop), [call("stop")])


def test_cmyk_images_are_converted_for_display():
    from PIL import Image

    text, displays = encode(Image.new("CMYK", (4, 4)), 16384)
    assert text == "[image 4x4 shown to the user]" and len(displays) == 1


def test_keyboard_interrupt_in_an_async_tool_propagates_from_a_private_loop():
    async def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ToolRunner(tools=[stop]).run_sync(run_for(stop), [call("stop")])


async def test_keyboard_interrupt_in_run_async_stops_the_runner_and_cuts_the_other_calls():
    cancelled = []

    async def stop() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def wait() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    # Never raised out of run_async (on the kernel's loop it would stop the loop): the runner is
    # stopped, the other calls are cut, and the driver cancels the run.
    runner = ToolRunner(tools=[stop, wait])
    records = await runner.run_async(run_for(stop, wait), [call("wait", {}, "1"), call("stop", {}, "2")])
    assert cancelled == [True] and runner.stopped == "interrupted"
    assert [r.status for r in records] == ["failed", "failed"]
    assert all("interrupted" in r.output for r in records)


def test_edited_arguments_may_come_back_as_json_text():
    approver = lambda r: ApprovalDecision(True, '{"region": "south"}')  # noqa: E731
    rec = one(ToolRunner(env=ENV, approve=True, approver=approver), RUN, "load_sales", {"region": "north"})
    assert json.loads(rec.output) == {"region": "south", "limit": 3}
    approver = lambda r: ApprovalDecision(True, "[1]")  # noqa: E731
    rec = one(ToolRunner(env=ENV, approve=True, approver=approver), RUN, "load_sales", {"region": "north"})
    assert rec.output == "error: the arguments of 'load_sales' must be a JSON object; got list"


async def test_the_widget_approver_answers_through_its_card():
    """The widget's real approval hook: a browser Approve with edited JSON reaches the tool."""
    from jupyter_runs.widget import RunWidget

    widget = RunWidget()
    runner = ToolRunner(env=ENV, approve=True, approver=widget.request_approval)
    task = asyncio.ensure_future(runner.run_async(RUN, [call("load_sales", {"region": "north"}, "c9")]))
    for _ in range(100):
        await asyncio.sleep(0)
        if widget._approvals:
            break
    assert [a["status"] for a in widget._approvals] == ["pending"]
    browser_msg = {"type": "approve", "id": "c9", "arguments": '{"region": "south", "limit": 2}'}
    widget._on_front_end_msg(widget, browser_msg, [])  # what the card's Approve button sends
    [rec] = await task
    assert json.loads(rec.output) == {"region": "south", "limit": 2}


def test_pydantic_and_typeddict_arguments_are_built():
    def order(item: Item, where: Where) -> str:
        return f"{type(item).__name__} {item.sku} x{item.qty} to {where['city']}"

    rec = one(ToolRunner(tools=[order]), run_for(order), "order", {"item": {"sku": "A1"}, "where": {"city": "Oslo"}})
    assert rec.output == "Item A1 x1 to Oslo"
    rec = one(ToolRunner(tools=[order]), run_for(order), "order", {"item": {"qty": 2}, "where": {}})
    assert "argument 'item' is missing required field 'sku'" in rec.output
    assert "argument 'where' is missing required field 'city'" in rec.output


def test_stdout_proxy_keeps_the_real_streams_attributes():
    from jupyter_runs.tools import capture as _capture

    real = sys.stdout
    with _capture.routing():
        assert sys.stdout is not real
        assert sys.stdout.encoding == real.encoding
    assert sys.stdout is real


def test_pyplot_figures_are_closed_once_shown_on_the_card():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def chart() -> Any:
        fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
        ax.plot([1, 2])
        return ax

    before = len(plt.get_fignums())
    rec = one(ToolRunner(tools=[chart]), run_for(chart), "chart")
    assert rec.output == "[figure 200x150 shown to the user]" and len(rec.displays) == 1
    assert len(plt.get_fignums()) == before
