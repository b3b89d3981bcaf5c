"""``%%run_assistant --context df`` in a real JupyterLab: the chips under the prompt, and a chip
opened to the exact text the model received."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.browser.test_widget_browser import open_notebook

pytestmark = pytest.mark.browser

SETUP = textwrap.dedent('''
    %load_ext jupyter_runs
    %config RunAssistantMagics.store = ":memory:"
    import numpy as np, pandas as pd
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"region": [f"r{i % 4}" for i in range(1000)],
                       **{f"m{i}": rng.normal(size=1000).round(3) for i in range(11)}})
    sizes = [1, 2, 3]
''')
# Printed by the kernel with its own encoder: what the chip must show, byte for byte.
EXPECTED = textwrap.dedent('''
    from jupyter_runs.context import attach
    print(attach("df", globals())[0].text)
''')
# A slow reply, so the chips are checked while the run is live (the widget is the view then).
SCRIPT = {"delay": 0.25, "turns": [{"text": " ".join(["The frame has 1,000 rows."] * 40)}]}
CELL = "%%run_assistant -m scripted:context_script.json --context df,sizes\nWhat is in df?"


def test_context_chips_show_and_expand_to_the_sent_text(page: Any, lab: Any, screenshot: Any) -> None:
    (lab.root / "context_script.json").write_text(json.dumps(SCRIPT))
    name = lab.write_notebook("context.ipynb", [SETUP, EXPECTED, CELL])
    open_notebook(page, lab, name)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".jr-run .jr-chip", timeout=60_000)
    page.wait_for_selector('.jr-run[data-status="in_progress"]', timeout=60_000)

    chips = page.locator(".jr-run .jr-chip")
    assert chips.count() == 2
    labels = [chips.nth(i).locator("summary").inner_text() for i in range(2)]
    assert labels[0].startswith("df · DataFrame 1,000×12 · ") and labels[0].endswith(" KB")
    assert labels[1].startswith("sizes · list[3] · ") and labels[1].endswith(" B")
    # Under the prompt, closed: one line each, inside the widget.
    run_box = page.locator(".jr-run").first.bounding_box()
    closed = chips.nth(0).bounding_box()
    prompt = page.locator(".jr-run .jr-prompt").first.bounding_box()
    assert closed["y"] >= prompt["y"] + prompt["height"] - 1
    assert closed["height"] < 40 and closed["x"] + closed["width"] <= run_box["x"] + run_box["width"]
    assert not chips.nth(0).locator("pre").is_visible()

    chips.nth(0).locator("summary").click()
    text = chips.nth(0).locator("pre.jr-chip-text")
    text.wait_for(state="visible")
    shown = text.evaluate("e => e.textContent")
    expected = page.locator(".jp-OutputArea-output pre").filter(has_text='<context name="df"').first
    assert shown == expected.evaluate("e => e.textContent").rstrip("\n")
    assert "shape: 1,000 rows x 12 columns" in shown and "numeric summary:" in shown
    opened = text.bounding_box()
    assert opened["height"] > 100 and opened["x"] + opened["width"] <= run_box["x"] + run_box["width"] + 1
    screenshot(page, "context-chips.png")
