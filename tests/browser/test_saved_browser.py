"""What a run leaves in the notebook, seen in a browser: reopened after a kernel restart (JupyterLab
and Notebook 7), exported by nbconvert and opened offline, and attacked through every untrusted
field (reply, tool argument, tool output, error message) in the static view (trusted and untrusted),
nbconvert's HTML and the markdown fallback rendered with raw HTML allowed. "Executes nothing" means
``window.__jrPwned`` stays unset, no dialog opens and no request goes to exfil.example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.test_widget_browser import REPLY, run_all
from tests.test_static_view import PAYLOAD

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
STATIC_DONE = '.jr-run.jr-static[data-status="completed"]'
TOOLS = textwrap.dedent('''
    def load_sales(region: str) -> list:
        """This quarter's sales rows for a region."""
        print(f"loading {region} sales")
        return [{"region": region, "q1": 100, "q2": 112 if region == "north" else 104}]

    def fetch_page(url: str) -> str:
        """A tool whose output is hostile."""
        return PAYLOAD
''')


def write_scripts(root: Path) -> None:
    scripts = {
        "tools.json": {"delay": 0.03, "turns": [
            {"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}},
                            {"name": "load_sales", "arguments": {"region": "south"}}]},
            {"text": "**North** grew fastest: +12%.\n\n| region | growth |\n|---|---|\n| north | +12% |\n"}]},
        "plain.json": {"delay": 0.03, "turns": [{"text": "Because its Q2 was the strongest quarter so far."}]},
        "xss.json": {"delay": 0.005, "turns": [
            {"tool_calls": [{"name": "fetch_page", "arguments": {"url": PAYLOAD}}]},
            {"text": PAYLOAD}]},
        "xss_error.json": {"turns": [{"error": {"code": "server_error", "message": PAYLOAD}}]},
    }
    for name, script in scripts.items():
        (root / name).write_text(json.dumps(script))


def cells(*runs: str) -> list[str]:
    return ["%load_ext jupyter_runs", f"PAYLOAD = {PAYLOAD!r}\n" + TOOLS, *runs]


TWO_RUNS = cells("%%run_assistant -m scripted:tools.json --tools load_sales\nWhich region grew fastest?",
                 "%%run_assistant -m scripted:plain.json -t second\nAnd why?",
                 "from jupyter_runs.frontend import control_comm_open, request_allows_stdin\n"
                 "print('control comm', control_comm_open(), 'allow_stdin', request_allows_stdin(get_ipython()))")
XSS_RUNS = cells("%%run_assistant -m scripted:xss.json --tools fetch_page\nShow me <b>HTML</b>",
                 "%%run_assistant -m scripted:xss_error.json -t other\nFail loudly")


def watch(page: Any) -> dict[str, list[str]]:
    """Record dialogs and requests for the exfiltration host; answer those requests with nothing."""
    seen: dict[str, list[str]] = {"dialogs": [], "exfil": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["exfil"].append(r.url) if "exfil.example" in r.url else None)
    page.route("**/exfil.example/**", lambda route: route.abort())
    return seen


def assert_nothing_ran(page: Any, seen: dict[str, list[str]]) -> None:
    for link in page.locator(".jr-run a").all():  # a surviving javascript: link would fire now
        if link.is_visible():
            link.click(modifiers=["Control"])
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__jrPwned") is None
    assert seen["dialogs"] == []
    assert seen["exfil"] == []
    hrefs = page.evaluate("() => [...document.querySelectorAll('.jr-run a')].map(a => a.getAttribute('href'))")
    assert all(h.startswith(("https://", "http://", "mailto:")) for h in hrefs if h), hrefs
    assert page.locator(".jr-run script, .jr-run iframe, .jr-run svg, .jr-run object, .jr-run embed").count() == 0
    assert page.locator(".jr-run img:not([src^='data:image/'])").count() == 0


def open_doc(page: Any, server: Any, name: str, prefix: str) -> None:
    page.goto(f"{server.url}/{prefix}/{name}" + ("?reset" if prefix == "lab/tree" else ""))
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const ctx = w && w.sessionContext;
            const k = ctx && ctx.session && ctx.session.kernel;
            return !!k && ctx.isReady && k.status === 'idle';
        }""",
        timeout=60_000,
    )


def save(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")


def restart_kernel(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=60_000)


def reopen_after_restart(page: Any, server: Any, prefix: str, screenshot: Any, shot: str) -> None:
    write_scripts(server.root)
    name = server.write_notebook("reopen.ipynb", TWO_RUNS)
    open_doc(page, server, name, prefix)
    run_all(page)
    page.wait_for_function(f"() => document.querySelectorAll('{STATIC_DONE}').length === 2", timeout=90_000)
    page.wait_for_function("() => document.body.innerText.includes('control comm')", timeout=30_000)
    probe = page.locator(".jp-OutputArea-output:has-text('control comm')").inner_text()
    print(f"[{prefix}] {probe}")
    assert "allow_stdin True" in probe  # the interactive signal the headless rule relies on
    replies = page.locator(REPLY).all_inner_texts()
    save(page)
    restart_kernel(page)

    saved = json.loads((server.root / name).read_text())
    mimes = [m for c in saved["cells"] for o in c.get("outputs", []) for m in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in mimes
    assert "jupyter_runs" not in json.dumps(saved["metadata"].get("widgets", {}))

    page.goto("about:blank")  # close the notebook and the app; reopen it from disk
    open_doc(page, server, name, prefix)
    page.wait_for_function(f"() => document.querySelectorAll('{STATIC_DONE}').length === 2", timeout=30_000)
    assert page.locator(REPLY).all_inner_texts() == replies
    assert "North grew fastest: +12%." in replies[0]
    assert "strongest quarter" in replies[1]
    assert page.locator('.jr-tool-call[data-name="load_sales"]').count() == 2
    assert page.locator('.jr-step[data-type="tool_calls"][data-status="completed"]').count() == 1
    assert "loading north sales" in page.locator(".jr-tool-stdout").first.text_content()
    text = page.locator("body").inner_text()
    assert "model not found" not in text and "Error displaying widget" not in text
    screenshot(page, shot)


def test_jupyterlab_reopens_both_runs_after_a_kernel_restart(page: Any, lab: Any, screenshot: Any) -> None:
    reopen_after_restart(page, lab, "lab/tree", screenshot, "reopen-lab.png")


def test_notebook7_reopens_both_runs_after_a_kernel_restart(page: Any, notebook7: Any, screenshot: Any) -> None:
    reopen_after_restart(page, notebook7, "notebooks", screenshot, "reopen-notebook7.png")


def test_attacks_execute_nothing_live_static_and_trusted_in_jupyterlab(page: Any, lab: Any) -> None:
    write_scripts(lab.root)
    name = lab.write_notebook("xss_live.ipynb", XSS_RUNS)
    seen = watch(page)
    open_doc(page, lab, name, "lab/tree")
    run_all(page)
    page.wait_for_selector(STATIC_DONE, timeout=60_000)
    page.wait_for_selector('.jr-run.jr-static[data-status="failed"]', timeout=60_000)
    assert_nothing_ran(page, seen)
    assert "<script>window.__jrPwned = 'script'</script>" in page.locator(REPLY).inner_text()
    assert "window.__jrPwned" in page.locator(".jr-tool-args").first.text_content()
    assert "window.__jrPwned" in page.locator(".jr-tool-output").first.text_content()
    assert "<img src=" in page.locator(".jr-error").inner_text()
    save(page)  # Lab signs what it saves: reopened, the notebook is trusted
    page.goto("about:blank")
    seen = watch(page)
    open_doc(page, lab, name, "lab/tree")
    page.wait_for_selector(STATIC_DONE, timeout=30_000)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.model.cells.get(2).trusted") is True
    assert_nothing_ran(page, seen)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The attack notebook plus the two-run one, executed headless (nbclient) and exported to HTML."""
    root = tmp_path_factory.mktemp("exported")
    write_scripts(root)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in XSS_RUNS + TWO_RUNS[2:4]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / "attacked.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "JUPYTER_RUNS_STORE": str(root / "threads.sqlite3")}
    env.pop("JUPYTER_RUNS_MODEL", None)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    str(path)], check=True, capture_output=True, cwd=root, env=env, timeout=180)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path)],
                   check=True, capture_output=True, cwd=root, env=env, timeout=120)
    return path


def test_nbconvert_html_offline_shows_the_conversation_and_runs_nothing(page: Any, executed: Path,
                                                                         screenshot: Any) -> None:
    seen = watch(page)
    page.context.route("http*://**", lambda route: route.abort())  # offline: CDN scripts fail too
    page.goto(executed.with_suffix(".html").as_uri())
    page.wait_for_selector(STATIC_DONE)
    assert page.locator(".jr-run").count() == 4
    assert_nothing_ran(page, seen)
    runs = page.locator(".jr-run")
    assert "North grew fastest: +12%." in runs.nth(2).inner_text()
    assert runs.nth(2).locator('.jr-tool-call[data-name="load_sales"]').count() == 2
    assert runs.nth(2).locator(".jr-step-head").first.is_visible()
    assert runs.nth(1).get_attribute("data-status") == "failed"
    runs.nth(2).scroll_into_view_if_needed()
    page.evaluate("() => document.querySelectorAll('.jr-run').forEach((r, i) => { if (i !== 2) r.remove(); })")
    screenshot(page, "nbconvert-static.png")


def test_markdown_fallback_with_raw_html_allowed_runs_nothing(page: Any, executed: Path) -> None:
    """Rendered by markdown-it (html on) and by nbconvert (mistune, after dropping text/html)."""
    from markdown_it import MarkdownIt

    nb = nbformat.read(executed, as_version=4)
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    fallbacks = [o.data["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
                 if "text/markdown" in o.get("data", {}) and "jr-run" in o.data.get("text/html", "")]
    assert len(fallbacks) == 4
    seen = watch(page)
    page.set_content("<!doctype html><body>" + "".join(f"<div class='md'>{md.render(f)}</div>" for f in fallbacks))
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__jrPwned") is None and seen["dialogs"] == [] and seen["exfil"] == []
    assert page.locator("img, script, iframe, a[href^='javascript']").count() == 0
    assert "<script>window.__jrPwned" in page.locator("body").inner_text()

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop("text/html", None)
    plain = executed.with_name("markdown_only.ipynb")
    nbformat.write(nb, plain)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(plain)],
                   check=True, capture_output=True, cwd=plain.parent, timeout=120)
    page.context.route("http*://**", lambda route: route.abort())
    page.goto(plain.with_suffix(".html").as_uri())
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__jrPwned") is None and seen["dialogs"] == [] and seen["exfil"] == []
    body = page.locator("body").inner_text()
    assert "<script>window.__jrPwned = 'script'</script>" in body
    assert "North grew fastest" in body


def test_untrusted_notebook_in_jupyterlab_runs_nothing_and_stays_readable(page: Any, lab: Any,
                                                                         executed: Path) -> None:
    """An executed notebook from elsewhere is untrusted: Lab sanitizes its HTML (our <style> goes)."""
    import shutil

    shutil.copy(executed, lab.root / "untrusted.ipynb")
    seen = watch(page)
    open_doc(page, lab, "untrusted.ipynb", "lab/tree")
    # textContent: Lab skips rendering cells scrolled out of view, so innerText may not have them yet.
    page.wait_for_function("() => document.body.textContent.includes('North grew fastest')", timeout=30_000)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.model.cells.get(2).trusted") is False
    assert_nothing_ran(page, seen)
    output = page.locator(".jp-OutputArea-output:has-text('North grew fastest')").text_content()
    for text in ("Which region grew fastest?", "load_sales", "loading north sales", "Completed"):
        assert text in output


def test_the_swap_to_the_static_view_keeps_the_runs_size(page: Any, lab: Any) -> None:
    """The static view replaces the live one where it stood: same box, give or take a few pixels."""
    write_scripts(lab.root)
    name = lab.write_notebook("swap.ipynb", TWO_RUNS[:3])
    open_doc(page, lab, name, "lab/tree")
    page.evaluate(
        """() => {
            window.__jrBoxes = [];
            const note = () => {
                const run = document.querySelector('.jr-run');
                if (!run) return;
                const r = run.getBoundingClientRect();
                const last = window.__jrBoxes[window.__jrBoxes.length - 1];
                // The live view's "Copy reply" row has no static twin (a copy button needs script,
                // which saved outputs never carry): counted apart, so any other jump still fails.
                const actions = [...run.querySelectorAll('.jr-message-actions')]
                    .reduce((sum, e) => sum + e.getBoundingClientRect().height, 0);
                const box = {static: run.classList.contains('jr-static'), status: run.dataset.status,
                             width: Math.round(r.width), height: Math.round(r.height),
                             actions: Math.round(actions)};
                if (!last || JSON.stringify(last) !== JSON.stringify(box)) window.__jrBoxes.push(box);
            };
            new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                                characterData: true});
        }"""
    )
    run_all(page)
    page.wait_for_selector(STATIC_DONE, timeout=60_000)
    page.wait_for_timeout(500)
    boxes = page.evaluate("() => window.__jrBoxes")
    live = [b for b in boxes if not b["static"] and b["status"] == "completed"]
    static = [b for b in boxes if b["static"]]
    assert live and static, boxes
    before, after = live[-1], static[-1]
    print(f"live {before} -> static {after}")
    assert before["width"] == after["width"]
    assert before["actions"] <= 40, before  # one row of buttons at most
    shown = before["height"] - before["actions"]
    assert abs(shown - after["height"]) <= max(12, 0.04 * shown), (before, after)
