"""A reasoning model in a real JupyterLab: the reasoning summary streams into its own timeline item,
which collapses when the model starts answering, and the header shows cached and reasoning tokens
and the run's cost from a configured price table.

The model is ``responses:fake``: the fake Responses server runs in this test process on a
loopback port, and the notebook's ``%%run_assistant`` reaches it through
``RunAssistantMagics.model_base_url``, so the whole path (magic, engine, Responses adapter,
widget, front end) is the real one.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.test_widget_browser import open_notebook, run_all
from tests.fakes.responses_server import FakeResponsesServer, text_reply

pytestmark = pytest.mark.browser

SUMMARY = [["**Multiplying**", " six", " by", " seven", " gives", " forty", "-two."],
           ["Double", "-checking", " with", " 7+7+7+7+7+7."]]


@pytest.fixture
def responses_server() -> Iterator[FakeResponsesServer]:
    server = FakeResponsesServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_reasoning_streams_then_collapses_and_the_cost_shows(page: Any, lab: Any, screenshot: Any,
                                                             responses_server: FakeResponsesServer) -> None:
    # 1000 in (400 cached), 600 out (500 reasoning): (600*2 + 400*0.5 + 600*8) / 1e6 = $0.0062
    responses_server.add(text_reply("It", " is", " **42**.", reasoning=SUMMARY,
                                    usage=(1000, 600, 500, 400), delay=0.12))
    setup = textwrap.dedent(f'''
        %load_ext jupyter_runs
        %config RunAssistantMagics.model_base_url = "{responses_server.base_url}"
        %config RunAssistantMagics.store = ":memory:"
        %config RunAssistantMagics.prices = {{"fake": {{"input": 2, "cached_input": 0.5, "output": 8}}}}
    ''')
    name = lab.write_notebook("reasoning.ipynb", [setup, "%%run_assistant -m responses:fake\nWhat is 6*7?"])
    open_notebook(page, lab, name)
    page.evaluate(
        """() => {
            window.__jrThinking = new Set();  // summary texts seen while the item was open, thinking
            new MutationObserver(() => {
                const item = document.querySelector('.jr-reasoning[data-status="in_progress"]');
                if (item && item.open) window.__jrThinking.add(item.querySelector('.jr-reasoning-text').textContent);
            }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )
    run_all(page)
    page.wait_for_selector('.jr-run[data-status="completed"]', timeout=90_000)

    partial = page.evaluate("() => [...window.__jrThinking].filter(t => t.length > 0)")
    full = "Multiplying six by seven gives forty-two.Double-checking with 7+7+7+7+7+7."
    assert len(partial) >= 3, partial  # it streamed: several growing texts while open
    assert all(full.replace(" ", "").startswith(t.replace("\n", "").replace(" ", "")) for t in partial)

    item = page.locator(".jr-reasoning")
    assert item.count() == 1
    assert item.get_attribute("data-status") == "completed"
    assert item.evaluate("e => e.open") is False  # collapsed once done
    label = item.locator(".jr-reasoning-label").inner_text()
    assert label.startswith("Thought for ") and label.endswith("500 reasoning tokens")
    assert item.locator(".jr-reasoning-text strong").text_content() == "Multiplying"
    # it sits before the reply's step in the timeline, and the reply is there
    types = page.evaluate("() => [...document.querySelectorAll('.jr-timeline > [data-type]')]"
                          ".map(e => e.dataset.type)")
    assert types.index("reasoning") < types.index("message_creation")
    assert "It is 42." in page.locator('.jr-message[data-role="assistant"]').inner_text()

    usage = page.locator(".jr-usage").inner_text()
    assert usage == "1,000 in · 400 cached · 600 out · 500 reasoning · 1,600 tokens · $0.00620"
    item.locator("summary").click()  # the user can reopen it
    assert item.evaluate("e => e.open") is True
    screenshot(page, "run-widget-reasoning.png")
    sent = responses_server.requests[0].body
    assert sent["store"] is False and sent["reasoning"] == {"summary": "auto"}
