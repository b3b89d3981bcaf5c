"""Side paths of ``%%run_assistant`` in a real JupyterLab and Chromium (issue #13): Stop while an
approval card is pending, a run refused before it exists, and Run All with several runs on one
thread. The notebooks use the magic itself, as a user would, with ``scripted:`` models.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.browser.test_widget_browser import open_notebook, run_all

pytestmark = pytest.mark.browser

LONG = " ".join(f"word{i}" for i in range(120))


def kernel_print(page: Any, code: str) -> str:
    """Run ``code`` in the notebook's kernel (not as a cell) and return what it printed."""
    return page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            let out = "";
            const future = kernel.requestExecute({code, store_history: false});
            future.onIOPub = (msg) => {
                if (msg.header.msg_type === "stream") out += msg.content.text;
                if (msg.header.msg_type === "error") out += "ERROR " + msg.content.ename + ": " + msg.content.evalue;
            };
            await future.done;
            return out;
        }""",
        code,
    )


def write_script(lab: Any, name: str, turns: list[dict[str, Any]], delay: float) -> str:
    (lab.root / name).write_text(json.dumps({"delay": delay, "turns": turns}))
    return f"scripted:{name}"  # relative to the kernel's working directory: the notebook's folder


def test_stop_with_an_approval_pending_stops_the_run_and_settles_the_card(page: Any, lab: Any, screenshot: Any) -> None:
    model = write_script(lab, "approve_stop.json", [
        {"tool_calls": [{"name": "drop_table", "arguments": {"table": "sales"}}]},
        {"text": "The table is gone."}], delay=0.0)
    setup = textwrap.dedent('''
        %load_ext jupyter_runs
        def drop_table(table: str) -> str:
            """Drop a table."""
            return f"dropped {table}"
    ''')
    name = lab.write_notebook("approve_stop.ipynb", [
        setup, f"%%run_assistant -m {model} --tools drop_table --approve drop_table -o r\nDrop the sales table."])
    open_notebook(page, lab, name)
    run_all(page)
    card = page.locator('.jr-approval[data-status="pending"]')
    card.wait_for(timeout=60_000)
    page.locator(".jr-stop").click()

    page.wait_for_selector('.jr-run[data-status="cancelled"]', timeout=30_000)
    page.wait_for_selector('.jr-approval[data-status="cancelled"]', timeout=10_000)
    page.wait_for_selector('.jr-step[data-type="tool_calls"][data-status="cancelled"]', timeout=10_000)
    settled = page.locator(".jr-approval")
    # Nothing left to click: the live card's buttons are disabled, and the static view that
    # replaces a finished run has none.
    assert all(b.is_disabled() for b in settled.locator(".jr-approve, .jr-deny").all())
    assert "the run was stopped" in settled.inner_text()
    assert not page.locator(".jr-stop").is_visible()
    screenshot(page, "run-widget-stopped-approval.png")
    # The background task ended: waiting for every run returns, and the run stays cancelled.
    out = kernel_print(page, "import jupyter_runs as jr\nawait jr.wait_all()\n"
                             "print(r.status, r.retrieve().status, r.done)")
    assert out.split() == ["cancelled", "cancelled", "True"], out
    assert "dropped" not in page.locator(".jr-run").inner_text()


def test_a_run_refused_before_it_exists_shows_failed_with_the_reason(page: Any, lab: Any) -> None:
    model = write_script(lab, "refused.json", [{"text": "never"}], delay=0.0)
    name = lab.write_notebook("refused.ipynb", [
        "%load_ext jupyter_runs", f"%%run_assistant -m {model} --max-tokens 10\nhello"])
    open_notebook(page, lab, name)
    run_all(page)
    page.wait_for_selector('.jr-run[data-status="failed"]', timeout=60_000)
    error = page.locator(".jr-error")
    assert error.is_visible() and "max_completion_tokens" in error.inner_text()
    assert not page.locator(".jr-stop").is_visible()
    assert page.locator(".jr-badge-text").inner_text() == "Failed"


def test_run_all_with_three_runs_on_one_thread_runs_them_in_order(page: Any, lab: Any) -> None:
    model = write_script(lab, "queue.json", [{"text": LONG}], delay=0.01)
    prompts = ["first question", "second question", "third question"]
    name = lab.write_notebook("queue.ipynb", ["%load_ext jupyter_runs"] + [
        f"%%run_assistant -m {model} -t shared\n{p}" for p in prompts])
    open_notebook(page, lab, name)
    page.evaluate(
        """() => {
            window.__jrWaiting = new Set();
            new MutationObserver(() => {
                document.querySelectorAll('.jr-run[data-status="waiting"]').forEach((el, i) => {
                    window.__jrWaiting.add(el.closest('.jp-Cell').querySelector('.jr-prompt').textContent);
                });
            }).observe(document.body, {subtree: true, childList: true, attributes: true});
        }"""
    )
    run_all(page)
    page.wait_for_selector('.jr-run[data-status="waiting"]', timeout=60_000)
    badge = page.locator('.jr-run[data-status="waiting"] .jr-badge-text').first.inner_text()
    assert badge == "Waiting for the previous run"
    from tests.browser.conftest import ARTIFACTS, SAVED

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "run-widget-waiting.png"
    page.locator('.jr-run[data-status="waiting"]').first.screenshot(path=str(shot))
    SAVED.append(shot)
    # The kernel is free while the runs stream and wait: it answers at once.
    assert kernel_print(page, "print(6 * 7)").strip() == "42"
    assert page.locator('.jr-run[data-status="completed"]').count() < 3

    page.wait_for_function("() => document.querySelectorAll('.jr-run[data-status=\"completed\"]').length === 3",
                           timeout=120_000)
    runs = page.locator(".jr-run")
    for i, prompt in enumerate(prompts):
        assert runs.nth(i).locator(".jr-prompt").inner_text().endswith(prompt)
        assert LONG in runs.nth(i).locator('.jr-message[data-role="assistant"]').inner_text()
    waited = page.evaluate("() => [...window.__jrWaiting]")
    assert any("second question" in w for w in waited) and any("third question" in w for w in waited)
    assert not any("first question" in w for w in waited)
    texts = json.loads(kernel_print(page, textwrap.dedent("""
        import json, jupyter_runs as jr
        from IPython import get_ipython
        m = get_ipython().magics_manager.registry["RunAssistantMagics"]
        client = jr.Client(store=m.store or None)
        t = next(t for t in client.threads.list() if t.metadata.get("jupyter_runs_name") == "shared")
        print(json.dumps([x.text for x in client.messages.list(t.id, order="asc") if x.role == "user"]))
    """)))
    assert texts == prompts
