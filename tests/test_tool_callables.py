"""Callables other than plain functions as tools, and figures a tool draws (issue #13)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from jupyter_runs.tools import ToolRunner, tool_param
from tests.test_magic_kernel import Kernel
from tests.test_tools import one, run_for


def sales(region: str, year: int) -> dict:
    """Sales of a region in a year.

    Args:
        region: the sales region
        year: the calendar year
    """
    return {"region": region, "year": year}


class Shop:
    def __init__(self, stock: int) -> None:
        self.stock = stock

    def count(self, item: str) -> int:
        """How many of an item are in stock."""
        return self.stock


def test_a_partial_is_named_and_described_after_its_function() -> None:
    param = tool_param(functools.partial(sales, year=2024))["function"]
    assert param["name"] == "sales" and param["description"] == "Sales of a region in a year."
    assert param["parameters"]["properties"]["region"] == {"description": "the sales region", "type": "string"}
    assert param["parameters"]["required"] == ["region"]


def test_a_partial_is_called_with_its_bound_arguments_even_when_its_function_is_in_env() -> None:
    this_year = functools.partial(sales, year=2024)
    runner = ToolRunner(env={"sales": sales}, tools=[this_year])
    rec = one(runner, run_for(this_year), "sales", {"region": "north"})
    assert rec.status == "completed", rec.output
    assert json.loads(rec.output) == {"region": "north", "year": 2024}


def test_bound_methods_of_two_objects_call_their_own_object() -> None:
    small, big = Shop(3), Shop(300)
    runner = ToolRunner(env={"count": small.count}, tools=[big.count])
    assert one(runner, run_for(big.count), "count", {"item": "apples"}).output == "300"


def test_a_figure_a_tool_draws_but_does_not_return_lands_on_its_record() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")

    def chart(n: int) -> str:
        """Plot n points."""
        plt.plot(range(n))
        return "plotted"

    plt.close("all")
    rec = one(ToolRunner(env={"chart": chart}), run_for(chart), "chart", {"n": 5})
    assert rec.output == "plotted"
    assert [d for d in rec.displays if "image/png" in d], rec.displays
    assert plt.get_fignums() == []  # closed: the inline backend cannot show it under another cell


def test_in_a_kernel_the_figure_is_on_the_step_not_under_the_next_cell(tmp_path: Path) -> None:
    turns = [{"tool_calls": [{"name": "chart", "arguments": {"n": 4}}]}, {"text": "Here is the chart."}]
    k = Kernel(tmp_path, turns, delay=0.0)
    try:
        k.ok("%matplotlib inline\nimport matplotlib.pyplot as plt")
        k.ok('def chart(n: int) -> str:\n    """Plot n points."""\n    plt.plot(range(n))\n    return "plotted"')
        k.ok("%%run_assistant --tools chart --wait -o r\nchart it")
        next_cell = k.ok("x = 1")
        assert not [m for m in next_cell if "image/png" in (m["content"].get("data") or {})]
        states = [m["content"]["data"].get("state", {}) for m in k.log if m["msg_type"] == "comm_msg"]
        records = [s["records"] for s in states if s.get("records")]
        assert records and any("image/png" in d for rec in records[-1].values() for d in rec["displays"])
    finally:
        k.close()
