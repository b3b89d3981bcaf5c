"""Price tables and the magic's model settings: validation, cost, and what reaches the engine;
a scripted reasoning turn (offline) through the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.testing.globalipapp import get_ipython
from traitlets import TraitError

import jupyter_runs as jr
from jupyter_runs.pricing import check_prices, price_for, run_cost
from jupyter_runs.widget import RunWidget

USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 400},
         "completion_tokens_details": {"reasoning_tokens": 250}}


def test_cost_prices_cached_input_at_its_own_rate_and_reasoning_as_output():
    table = check_prices({"gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10}})
    price = price_for(table, "responses:gpt-5")
    assert run_cost(USAGE, price) == pytest.approx((800 * 1.25 + 400 * 0.125 + 300 * 10) / 1e6)
    assert run_cost(USAGE, {"input": 1, "output": 1}) == pytest.approx(1500 / 1e6)
    assert price_for(table, "compat:other") is None and run_cost(USAGE, None) is None
    assert price_for({"*": {"input": 1}}, "x:y") == {"input": 1}


@pytest.mark.parametrize(("table", "says"), [
    ([1, 2], "must be a dict"),
    ({"m": 3}, "prices['m'] must be a dict"),
    ({"m": {"inptu": 1}}, "unknown keys ['inptu']"),
    ({"m": {"input": -1}}, "non-negative number"),
    ({"m": {"output": float("nan")}}, "non-negative number"),
    ({"m": {"output": "2"}}, "non-negative number"),
])
def test_bad_price_tables_say_what_is_wrong(table, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        check_prices(table)


@pytest.fixture
def magics() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = get_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_runs")
    m = shell.magics_manager.registry["RunAssistantMagics"]
    saved = (m.prices, m.model_deadline, m.model_idle_timeout, m.store)
    yield m
    m.prices, m.model_deadline, m.model_idle_timeout, m.store = saved
    m._clients.clear()
    shell.run_line_magic("unload_ext", "jupyter_runs")
    InteractiveShell.clear_instance()  # later tests run outside IPython again


def test_prices_config_is_validated_and_reaches_the_widget_text(magics):
    with pytest.raises(TraitError, match="unknown keys"):
        magics.prices = {"fake": {"in": 1}}
    magics.prices = {"fake": {"input": 2, "output": 8}}
    widget = RunWidget(prices=dict(magics.prices))
    run = {"id": "run_1", "object": "thread.run", "status": "completed", "model": "responses:fake",
           "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}
    widget.feed(("thread.run.completed", run))
    assert "$0.006" in widget.to_text()  # (1000*2 + 500*8) / 1e6
    widget.close()


def test_deadlines_from_the_magic_config_reach_the_model_adapters(magics):
    magics.store = ":memory:"
    magics.model_deadline, magics.model_idle_timeout = 42.0, 7.0
    magics.model_base_url = "http://127.0.0.1:9/v1"
    magics._clients.clear()
    try:
        engine = magics._client(None).backend.engine
        adapter = engine.model("responses:fake")
        assert (adapter.http.deadline, adapter.http.idle_timeout) == (42.0, 7.0)
        assert engine.model("compat:fake").http.idle_timeout == 7.0
    finally:
        magics.model_base_url = ""


def test_scripted_reasoning_turn_becomes_a_reasoning_step(script: Callable[..., str]):
    model = script([{"reasoning": "Six sevens make forty-two.", "text": "42."}])
    client = jr.Client(store=":memory:")
    try:
        asst = client.assistants.create(model=model)
        thread = client.threads.create(messages=[{"role": "user", "content": "6*7?"}])
        run = client.runs.create(thread.id, assistant_id=asst.id, stream=True).until_done(env={})
        steps = client.steps.list(thread.id, run.id, order="asc").to_list()
    finally:
        client.close()
    assert run.status == "completed"
    assert [s.type for s in steps] == ["reasoning", "message_creation"]
    assert steps[0].step_details.reasoning["summary"] == "Six sevens make forty-two."
    assert steps[1].usage.completion_tokens_details == {"reasoning_tokens": 4}
    assert run.usage.completion_tokens == 4 + 1
