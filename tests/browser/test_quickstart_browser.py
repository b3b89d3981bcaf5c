"""The README's first command, in the browser: examples/quickstart.ipynb run in JupyterLab.

The notebook is copied as it ships (with its scripted model) and run with Run All. The checks are
the workflow's promises: the magic's cell returns while the widget streams, the kernel is idle
while text still arrives (that is what lets Stop work), Stop cancels mid-run, and the finished
widget shows every tool call and the completed status.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_widget_browser import COMPLETED, REPLY, open_notebook, run_all

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STREAMING = f'{REPLY}[data-streaming="true"]'
KERNEL_IDLE = """() => {
    const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    return k.status === 'idle';
}"""


def copy_quickstart(lab: Any, name: str) -> str:
    shutil.copy(EXAMPLES / "quickstart.json", lab.root / "quickstart.json")
    shutil.copy(EXAMPLES / "quickstart.ipynb", lab.root / name)
    return name


def test_quickstart_streams_with_an_idle_kernel_and_completes(page: Any, lab: Any, screenshot: Any) -> None:
    open_notebook(page, lab, copy_quickstart(lab, "quickstart.ipynb"))
    run_all(page)
    # Text still arriving *and* the kernel idle, at one moment: the cell has returned.
    page.wait_for_function(
        f"""() => !!document.querySelector('{STREAMING}') && ({KERNEL_IDLE})()""", timeout=60_000)
    page.wait_for_selector(COMPLETED, timeout=60_000)

    assert "Fastest growth: North" in page.locator(REPLY).inner_text()
    assert page.locator('.jr-tool-call[data-name="load_sales"]').count() == 2
    assert page.locator('.jr-tool-call[data-name="percent_change"]').count() == 2
    assert page.locator(".jr-tool-output").first.text_content().strip() != ""  # folded: not rendered
    assert page.locator('.jr-step[data-type="tool_calls"][data-status="completed"]').count() == 2
    # The tools' prints belong to their cards, not to the cell output below the widget.
    assert "loading north" in page.locator('.jr-tool-call[data-name="load_sales"]').first.text_content()
    stray = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => !o.querySelector('.jr-run') && o.textContent.includes('loading north')).length""")
    assert stray == 0
    path = screenshot(page, "quickstart-light.png")
    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshot-light.png"
    if not docs.exists():  # the README's picture; refreshed by deleting it and rerunning
        shutil.copy(path, docs)


def test_quickstart_stop_cancels_mid_run(page: Any, lab: Any) -> None:
    open_notebook(page, lab, copy_quickstart(lab, "quickstart_stop.ipynb"))
    run_all(page)
    page.wait_for_selector(STREAMING, timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=30_000)
    page.locator(".jr-stop").click()
    page.wait_for_selector('.jr-run[data-status="cancelled"]', timeout=30_000)
    partial = page.locator(REPLY).inner_text()
    assert partial.strip() and "product line next" not in partial
    assert page.locator(".jr-tool-call").count() == 4  # the finished tool calls stay visible
