"""The run view outside JupyterLab: Voila, and nbconvert's HTML page styles.

The widget's CSS must win over each front end's own rules by its specificity (every rule scoped
under ``.jr-run``), not by ``!important``. Two hosts are checked from computed styles:
- Voila, for real: a notebook with a scripted run served by ``voila`` on 127.0.0.1, the widget
  rendered by Voila's widget manager, tool arguments and code blocks in the code font.
- nbconvert's lab template CSS (``index.css`` + theme), which styles every ``pre``/``table`` inside
  ``.jp-RenderedHTMLCommon`` output: the view's DOM (built by the real bundle in the page, fed a
  finished snapshot) is placed where an HTML output sits, and must keep its own fonts and boxes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import REPO, _free_port, _has_module, _need
from tests.browser.test_widget_browser import COMPLETED, SETUP, TWO_TOOLS, run_cell

pytestmark = pytest.mark.browser

STYLES_JS = """() => {
    const get = (sel) => {
        const e = document.querySelector(sel);
        if (!e) return null;
        const cs = getComputedStyle(e);
        return {font: cs.fontFamily, bg: cs.backgroundColor, pad: cs.paddingLeft, display: cs.display, ws: cs.whiteSpace};
    };
    const probe = document.createElement('span');
    probe.style.fontFamily = 'var(--jr-mono)';
    document.querySelector('.jr-run').append(probe);
    const mono = getComputedStyle(probe).fontFamily;
    probe.remove();
    return {mono, body: getComputedStyle(document.querySelector('.jr-run')).fontFamily,
            args: get('.jr-run pre.jr-tool-args'), out: get('.jr-run pre.jr-tool-output-text'),
            code: get('.jr-run .jr-code > pre'), table: get('.jr-run .jr-md table'), name: get('.jr-run .jr-tool-name')};
}"""


def assert_own_styles(got: dict[str, Any]) -> None:
    assert re.search(r"mono", got["mono"], re.I), got["mono"]
    for part in ("args", "out", "code", "name"):
        assert got[part] is not None, f"{part} missing"
        assert got[part]["font"] == got["mono"], f"{part} lost the code font: {got[part]['font']!r} vs {got['mono']!r}"
    assert got["args"]["pad"] == "8px", got["args"]  # the host's `pre { padding: 0 }` lost
    assert got["args"]["ws"] == "pre-wrap", got["args"]
    assert got["code"]["ws"] == "pre", got["code"]
    assert got["table"]["display"] == "block", got["table"]  # wide tables scroll inside the message


class Voila:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "voila.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, notebook: str) -> Voila:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("OPENAI_API_KEY", None)
        env["JUPYTER_RUNS_STORE"] = str(self.root / "threads.sqlite3")
        cmd = [sys.executable, "-m", "voila", notebook, "--no-browser", f"--port={self.port}",
               "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited: {self.log.read_text()[-3000:]}")
            # Any GET of a page would execute the notebook: wait for the server's banner instead.
            if "is running at" in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"voila did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def test_voila_keeps_the_code_font_on_tool_arguments(browser: Any, tmp_path: Path) -> None:
    if not _has_module("voila"):
        _need("Voila", "pip install voila")
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(run_cell("Which region grew fastest?", TWO_TOOLS))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "voila.ipynb")
    server = Voila(tmp_path).start("voila.ipynb")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url, timeout=90_000)
        page.wait_for_selector(".jr-run", timeout=90_000)
        # The widget streams; once the tool step exists, unfold it so the cards are rendered.
        page.wait_for_selector('.jr-run .jr-step[data-type="tool_calls"]', timeout=60_000)
        page.wait_for_selector(COMPLETED, timeout=90_000)
        page.locator('.jr-run details.jr-step > summary').first.click()
        got = page.evaluate(STYLES_JS)
        assert_own_styles(got)
    finally:
        context.close()
        server.stop()


def test_nbconvert_page_styles_do_not_win_over_the_view(browser: Any) -> None:
    from jupyter_core.paths import jupyter_path

    static = next((Path(p) for p in jupyter_path("nbconvert", "templates", "lab", "static")
                   if (Path(p) / "index.css").exists()), None)
    if static is None:
        _need("nbconvert's lab template", "pip install nbconvert")
    bundle = (REPO / "jupyter_runs" / "static" / "widget.js").read_text()
    css = (REPO / "jupyter_runs" / "static" / "widget.css").read_text()
    m = re.search(r"export\s*\{([^}]*)\}\s*;?\s*$", bundle)
    name = re.search(r"([\w$]+)\s+as\s+default", m.group(1)) if m else None
    assert name, "the bundle's default export was not found"
    script = bundle[: m.start()] + f"window.__jrFactory = {name.group(1)};"
    snapshot = {
        "seq": 0, "prompt": "Which region?",
        "run": {"id": "r", "status": "completed", "model": "scripted:x",
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
        "messages": [{"id": "m", "role": "assistant", "status": "completed", "content": [
            {"index": 0, "type": "text", "text": {"value": "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```"}}]}],
        "steps": [{"id": "s", "type": "tool_calls", "status": "completed", "step_details": {"type": "tool_calls", "tool_calls": [
            {"index": 0, "id": "c", "type": "function", "function": {"name": "load_sales", "arguments": '{"region": "north"}', "output": "[1]"}}]}}],
        "records": {}, "approvals": [], "timings": {"s": [0, 1]}, "elapsed": 1,
    }
    page = browser.new_page()
    try:
        page.set_content(
            "<html><head>"
            f"<style>{(static / 'index.css').read_text()}</style>"
            f"<style>{(static / 'theme-light.css').read_text()}</style>"
            f"<style>{css}</style></head>"
            '<body class="jp-Notebook" data-jp-theme-light="true"><div class="jp-Cell jp-CodeCell"><div class="jp-OutputArea">'
            '<div class="jp-OutputArea-child"><div class="jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML" id="out">'
            "</div></div></div></div></body></html>")
        page.add_script_tag(content=script, type="module")
        page.wait_for_function("() => !!window.__jrFactory")
        page.evaluate("""(snap) => {
            const attrs = {...snap, meta: {seq: 0, timings: snap.timings, elapsed: snap.elapsed}};
            const model = {get: (k) => attrs[k], on() {}, off() {}, send() {}};
            const w = window.__jrFactory();
            w.initialize({model});
            w.render({model, el: document.getElementById('out')});
        }""", snapshot)
        page.wait_for_selector('.jr-run[data-status="completed"] .jr-code')
        page.locator('.jr-run details.jr-step > summary').first.click()
        assert_own_styles(page.evaluate(STYLES_JS))
    finally:
        page.close()
