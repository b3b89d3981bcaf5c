"""Tool calls end to end: the embedded engine, a scripted model, and the outputs the model received
(the tool call outputs stored on the run's tool_calls step, which the engine sends back to the
model in its next request)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

import jupyter_runs as jr
from jupyter_runs.tools import ApprovalDecision, ApprovalRequest, ToolRunner


@pytest.fixture
def client() -> Iterator[jr.Client]:
    c = jr.Client(store=":memory:")
    try:
        yield c
    finally:
        c.close()


def load_sales(region: Literal["north", "south"], limit: int = 3) -> dict[str, Any]:
    """Sales of one region.

    Args:
        region: Which region.
        limit: How many rows.
    """
    return {"region": region, "rows": limit}


def declared(name: str) -> dict[str, Any]:
    """A hand-written tool dict: declares ``name`` on the assistant without exposing anything."""
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


class Outcome:
    def __init__(self, run: Any, records: list[Any], outputs: list[str]) -> None:
        self.run, self.records, self.outputs = run, records, outputs

    @property
    def output(self) -> str:
        [out] = self.outputs
        return out


def run_calls(
    client: jr.Client,
    script: Callable[..., str],
    calls: list[dict[str, Any]],
    tools: list[Any],
    env: dict[str, Any] | None = None,
    runner: ToolRunner | None = None,
    assistant_id: str | None = None,
) -> Outcome:
    """One run in which the model makes ``calls`` then answers; returns what the model received."""
    model = script([{"tool_calls": calls}, {"text": "done"}])
    if assistant_id is None:
        assistant_id = client.assistants.create(model=model, tools=tools).id
    thread = client.threads.create()
    client.messages.create(thread.id, role="user", content="go")
    records: list[Any] = []
    run = client.runs.create(thread.id, assistant_id=assistant_id, model=model, stream=True).until_done(
        env=env, runner=runner, on_tool_call=records.append)
    steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    outputs = [c.function.output for c in steps[0].step_details.tool_calls]
    return Outcome(run, records, outputs)


def test_valid_call_runs_and_the_model_gets_json(client, script):
    got = run_calls(client, script, [{"name": "load_sales", "arguments": {"region": "north"}}], [load_sales])
    assert got.run.status == "completed"
    assert json.loads(got.output) == {"region": "north", "rows": 3}


def test_unknown_tool(client, script):
    got = run_calls(client, script, [{"name": "rm_rf", "arguments": {}}], [load_sales])
    assert got.output == "error: unknown tool 'rm_rf'; the available tools are: load_sales"


def test_declared_but_not_exposed(client, script):
    got = run_calls(client, script, [{"name": "secret_sauce", "arguments": {}}], [declared("secret_sauce")], env={})
    assert "not exposed" in got.output and got.records[0].status == "failed"


def test_name_starting_with_underscore_never_runs(client, script):
    ran = []

    def _hidden() -> str:
        ran.append(1)
        return "leak"

    got = run_calls(client, script, [{"name": "_hidden", "arguments": {}}], [declared("_hidden")],
                    env={"_hidden": _hidden})
    assert "private names are never callable" in got.output and ran == []


@pytest.mark.parametrize("name", ["eval", "exec", "open", "os"])
def test_builtins_and_modules_never_run(client, script, name):
    env = {"eval": eval, "exec": exec, "open": open, "os": os}
    got = run_calls(client, script, [{"name": name, "arguments": {}}], [declared(name)], env=env)
    assert got.output == (f"error: tool {name!r} is not available: the user has not exposed a function by "
                          "that name for this run, so it was not run")


def test_invalid_json_arguments(client, script):
    got = run_calls(client, script, [{"name": "load_sales", "arguments": '{"region": nor'}], [load_sales])
    assert got.output.startswith("error: the arguments of 'load_sales' are not valid JSON")


def test_wrong_type_and_bad_enum(client, script):
    got = run_calls(client, script, [{"name": "load_sales", "arguments": {"region": "N", "limit": "x"}}],
                    [load_sales])
    assert got.output == ("error: invalid arguments for 'load_sales': argument 'region' must be one of "
                          "'north', 'south'; got 'N'; argument 'limit' must be an integer; got 'x'")


def test_missing_required_argument(client, script):
    got = run_calls(client, script, [{"name": "load_sales", "arguments": {"limit": 2}}], [load_sales])
    assert got.output == "error: invalid arguments for 'load_sales': missing required argument 'region'"


def test_extra_argument(client, script):
    got = run_calls(client, script, [{"name": "load_sales", "arguments": {"region": "north", "year": 2024}}],
                    [load_sales])
    assert got.output == ("error: invalid arguments for 'load_sales': unexpected argument 'year' "
                          "(the parameters are: region, limit)")


def test_tool_raises(client, script):
    def divide(a: float, b: float) -> float:
        return a / b

    got = run_calls(client, script, [{"name": "divide", "arguments": {"a": 1, "b": 0}}], [divide])
    assert got.output == "error: ZeroDivisionError: float division by zero"
    assert got.run.status == "completed"


def test_async_tool_past_its_timeout(client, script):
    @jr.tool(timeout=0.05)
    async def slow_query(sql: str) -> str:
        await asyncio.sleep(30)
        return "rows"

    got = run_calls(client, script, [{"name": "slow_query", "arguments": {"sql": "select 1"}}], [slow_query])
    assert got.output == "error: tool 'slow_query' timed out after 0.05 s and was cancelled"


def test_non_json_return_falls_back_to_repr(client, script):
    class Handle:
        def __repr__(self) -> str:
            return "<Handle 7>"

    def open_handle() -> Any:
        return {"handle": Handle()}

    got = run_calls(client, script, [{"name": "open_handle", "arguments": {}}], [open_handle])
    assert got.output == "{'handle': <Handle 7>}"


def test_one_megabyte_return_is_capped(client, script):
    def dump() -> str:
        return "0123456789" * 100_000

    got = run_calls(client, script, [{"name": "dump", "arguments": {}}], [dump])
    assert len(got.output.encode()) <= 16384
    assert got.output.startswith("0123456789") and "[... truncated: 1000000 bytes" in got.output


def test_tool_prints_and_displays(client, script):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import HTML, display

    existed = InteractiveShell.initialized()
    InteractiveShell.instance()
    try:
        def report(n: int) -> None:
            print(f"computing {n}")
            print("warning: slow", file=sys.stderr)
            display(HTML("<b>chart</b>"))

        got = run_calls(client, script, [{"name": "report", "arguments": {"n": 2}}], [report])
    finally:
        if not existed:
            InteractiveShell.clear_instance()
    [rec] = got.records
    assert got.output == "computing 2\n"  # printed text stands in for the None return
    assert (rec.stdout, rec.stderr) == ("computing 2\n", "warning: slow\n")
    assert [d["text/html"] for d in rec.displays] == ["<b>chart</b>"]


def test_approval_denied(client, script):
    ran = []

    def delete_rows(table: str) -> str:
        ran.append(table)
        return "deleted"

    runner = ToolRunner(tools=[delete_rows], approve={"delete_rows"},
                        approver=lambda request: ApprovalDecision(False, reason="keep the data"))
    got = run_calls(client, script, [{"name": "delete_rows", "arguments": {"table": "sales"}}], [delete_rows],
                    runner=runner)
    assert got.output == "the user declined to run delete_rows: keep the data" and ran == []
    assert got.records[0].status == "denied"


def test_approval_with_edited_arguments(client, script):
    seen: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> dict[str, Any]:
        seen.append(request)
        return {"approved": True, "arguments": {**request.arguments, "region": "south"}}

    runner = ToolRunner(tools=[load_sales], approve="always", approver=approver)
    got = run_calls(client, script, [{"name": "load_sales", "arguments": {"region": "north"}}], [load_sales],
                    runner=runner)
    assert [r.arguments for r in seen] == [{"region": "north"}]
    assert json.loads(got.output) == {"region": "south", "rows": 3}


def test_function_redefined_between_two_runs(client, script):
    def forecast(region: str) -> str:
        return f"v1 {region}"

    env = {"forecast": forecast}
    model = script([{"tool_calls": [{"name": "forecast", "arguments": {"region": "north"}}]}, {"text": "ok"}])
    asst = client.assistants.create(model=model, tools=[forecast])
    first = run_calls(client, script, [{"name": "forecast", "arguments": {"region": "north"}}], [], env=env,
                      assistant_id=asst.id)
    assert first.output == "v1 north"

    def forecast(region: str) -> str:  # same signature, new body: the new body runs
        return f"v2 {region}"

    env["forecast"] = forecast
    second = run_calls(client, script, [{"name": "forecast", "arguments": {"region": "north"}}], [], env=env,
                       assistant_id=asst.id)
    assert second.output == "v2 north"

    def forecast(region: str, months: int) -> str:  # new signature: the model is told, nothing runs
        return f"v3 {region} {months}"

    env["forecast"] = forecast
    third = run_calls(client, script, [{"name": "forecast", "arguments": {"region": "north"}}], [], env=env,
                      assistant_id=asst.id)
    assert third.output.startswith("error: tool 'forecast' changed since this run started and was not run")
    assert '"months"' in third.output


def test_parallel_calls_go_back_in_call_order(client, script):
    async def fetch(key: str) -> str:
        await asyncio.sleep(0.01 if key == "a" else 0)
        return key.upper()

    got = run_calls(client, script, [{"name": "fetch", "arguments": {"key": k}} for k in "abc"], [fetch])
    assert got.outputs == ["A", "B", "C"]


def test_the_model_request_carries_the_schema_and_then_the_tool_outputs(chat_server):
    """Through a real Chat Completions request: the schema the model is offered, and the outputs
    (one valid, one refused) it is sent back, in call order."""
    from tests.fakes.chat_server import text_reply, tool_calls_reply

    chat_server.add(tool_calls_reply([("call_a", "load_sales", '{"region": "south"}'),
                                      ("call_b", "load_sales", '{"region": "east"}')]),
                    text_reply("South sold 3."))
    with jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url}) as c:
        asst = c.assistants.create(model="compat:fake", tools=[load_sales])
        thread = c.threads.create()
        c.messages.create(thread.id, role="user", content="sales?")
        run = c.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done()
    assert run.status == "completed"
    first, second = (r.body for r in chat_server.requests)
    [offered] = first["tools"]
    assert offered["function"]["parameters"]["properties"]["region"] == {
        "description": "Which region.", "type": "string", "enum": ["north", "south"]}
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages == [
        {"role": "tool", "tool_call_id": "call_a", "content": '{"region": "south", "rows": 3}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "error: invalid arguments for 'load_sales': "
                                                             "argument 'region' must be one of 'north', 'south'; got 'east'"},
    ]
