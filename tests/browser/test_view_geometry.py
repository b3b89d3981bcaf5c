"""The run view's geometry in a real JupyterLab: can a reader reach every part of a real run?

A scripted run with 12 tool calls and a long reply (a 12-column table, a long code block with wide
lines, a 300-character URL, then many paragraphs) streams at 1366x768, 1920x1080 and in a notebook
panel 500 px wide (the file browser open). Everything is asserted from layout boxes, not by eye:
every tool card unfolds and fits fully in the viewport once scrolled to; nothing in the widget
sticks out of it sideways except inside a table or code block that scrolls sideways itself; the
header's status, elapsed time and usage are on screen and not clipped; while the reader sits at
the bottom the newest line stays in the viewport, and once they scroll up nothing moves.

These checks run on the LIVE widget while the reply still streams (each one asserts the reply is
still streaming when it is done, so a run that got too fast fails loudly instead of checking a
finished view). Only the usage check waits for the end, and it reads the same classes
(``.jr-run .jr-usage``) whichever view of the finished run the notebook then shows.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, SAVED
from tests.browser.test_widget_browser import (
    COMPLETED,
    REPLY,
    SETUP,
    open_notebook,
    run_all,
    set_theme,
)

pytestmark = pytest.mark.browser

STREAMING = f'{REPLY}[data-streaming="true"]'

TOOLS = textwrap.dedent('''
    def region_report(region: str, lines: int = 3) -> str:
        """A plain-text report for a region, `lines` lines long."""
        print(f"report for {region}")
        return "\\n".join(f"{region} line {i}: " + "value " * 12 for i in range(lines))
''')

REGIONS = ["north", "south", "east", "west", "centre", "coast", "hills", "islands"]


def long_reply() -> str:
    cols = [f"metric_{i:02d}" for i in range(12)]
    table = "| " + " | ".join(cols) + " |\n|" + "---|" * 12 + "\n" + "".join(
        "| " + " | ".join(f"{r}-{c}-{100 + i * 7}" for c in range(12)) + " |\n" for i, r in enumerate(REGIONS))
    code = "```python\n" + "".join(
        f"row_{i} = compute(region='north', quarter={i % 4}, window={i}, "
        f"weights=[{', '.join(str(j) for j in range(30))}])\n" for i in range(40)) + "```\n"
    url = "https://example.org/reports/" + "q" * 250 + "?region=north&quarter=3&x=" + "z" * 10
    assert len(url) >= 300
    filler = "".join(
        f"Paragraph {k}: the north region kept growing through the quarter while the others "
        f"flattened out, and the numbers above show where each one ended up in week {k}.\n\n"
        for k in range(30))
    return (f"## Twelve tool calls later\n\nThe table is wide:\n\n{table}\nThe code is long:\n\n{code}\n"
            f"The full report: {url}\n\n{filler}That is all.")


SCRIPT = {"delay": 0.02, "turns": [
    {"tool_calls": [{"name": "load_sales", "arguments": {"region": r}} for r in REGIONS]},
    {"tool_calls": [{"name": "region_report", "arguments": {"region": r, "lines": 40 if i == 0 else 3}}
                    for i, r in enumerate(REGIONS[:4])]},
    {"text": long_reply()},
]}


def run_cell() -> str:
    return textwrap.dedent(f'''
        prompt = "Compare every region, show the whole table, the code and the report link."
        stream = start({SCRIPT!r}, prompt, tools=(load_sales, region_report))
        w = RunWidget(stream, env=globals())
        w.set_prompt(prompt)
        w
    ''')


SCROLLER = """() => {
    const root = document.querySelector('.jr-run');
    for (let n = root.parentElement; n; n = n.parentElement) {
        const oy = getComputedStyle(n).overflowY;
        if ((oy === 'auto' || oy === 'scroll') && n.scrollHeight > n.clientHeight + 1) return n;
    }
    return document.scrollingElement;
}"""

# The visible band of the notebook: its scroller's box clipped to the window.
VIEWPORT_JS = f"""() => {{
    const sc = ({SCROLLER})();
    const r = sc.getBoundingClientRect();
    return {{top: Math.max(0, r.top), bottom: Math.min(innerHeight, r.bottom), scrollTop: sc.scrollTop}};
}}"""

OVERFLOW_JS = """() => {
    // Elements whose box leaves the widget's box sideways, except inside a sideways scroller
    // (a table or code block), which must itself fit and really scroll.
    const root = document.querySelector('.jr-run');
    const rr = root.getBoundingClientRect();
    const name = (e) => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
    const scrollerOf = (e) => {
        for (let n = e.parentElement; n && n !== root; n = n.parentElement) {
            const ox = getComputedStyle(n).overflowX;
            if (ox === 'auto' || ox === 'scroll') return n;
        }
        return null;
    };
    const bad = [];
    const scrollers = new Set();
    for (const e of root.querySelectorAll('*')) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        const sc = scrollerOf(e);
        if (sc) { scrollers.add(sc); continue; }
        if (r.left < rr.left - 0.5 || r.right > rr.right + 0.5) bad.push(`${name(e)} [${Math.round(r.left)}, ${Math.round(r.right)}] outside [${Math.round(rr.left)}, ${Math.round(rr.right)}]`);
    }
    const wide = [];
    for (const sc of scrollers) {
        if (!['TABLE', 'PRE'].includes(sc.tagName) && !sc.classList.contains('jr-display-html')) bad.push(`unexpected sideways scroller ${name(sc)}`);
        if (sc.scrollWidth > sc.clientWidth + 1) wide.push(sc.tagName);
    }
    return {bad, wide, width: rr.width};
}"""


def viewport(page: Any) -> dict[str, float]:
    return page.evaluate(VIEWPORT_JS)


def still_streaming(page: Any, what: str) -> None:
    assert page.locator(STREAMING).count() == 1, (
        f"the run finished before {what} was checked on the live view: give the script more words")


def last_line_box(page: Any) -> dict[str, float]:
    return page.evaluate("""() => {
        const caret = document.querySelector('.jr-message[data-role="assistant"] .jr-caret');
        const r = caret.getBoundingClientRect();
        return {top: r.top, bottom: r.bottom};
    }""")


def reply_length(page: Any) -> int:
    return page.evaluate(f"() => document.querySelector('{REPLY} .jr-md').textContent.length")


def scroll_to_widget_bottom(page: Any) -> None:
    """Where a reader who follows the reply sits: the widget's bottom edge at the viewport's.
    (Not the scroller's end: JupyterLab scrolls past the last cell, up to the top.)"""
    page.evaluate("() => document.querySelector('.jr-run').scrollIntoView({block: 'end'})")


def set_panel_width(page: Any, width: int) -> None:
    """Open the file browser and size the window so the notebook panel is `width` px wide."""
    page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    page.wait_for_function("() => !!document.querySelector('.jp-FileBrowser') && document.querySelector('.jp-FileBrowser').offsetWidth > 0")
    for _ in range(4):
        got = page.evaluate("() => document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width")
        if abs(got - width) <= 2:
            return
        vp = page.viewport_size
        page.set_viewport_size({"width": int(vp["width"] + width - got), "height": vp["height"]})
        page.wait_for_timeout(400)
    got = page.evaluate("() => document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width")
    assert abs(got - width) <= 2, f"notebook panel is {got} px wide, wanted {width}"


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    SAVED.append(path)


def check_header(page: Any, finished: bool) -> None:
    page.locator(".jr-run .jr-header").scroll_into_view_if_needed()
    parts = [".jr-badge", ".jr-elapsed"] + ([".jr-usage"] if finished else [])
    boxes = page.evaluate("""(sels) => {
        const root = document.querySelector('.jr-run').getBoundingClientRect();
        return sels.map((s) => {
            const e = document.querySelector('.jr-run ' + s);
            if (!e) return {s, missing: true};
            const r = e.getBoundingClientRect();
            return {s, text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                    clipped: e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflow !== 'visible',
                    root: {left: root.left, right: root.right}, vh: innerHeight};
        });
    }""", parts)
    for b in boxes:
        assert not b.get("missing"), f"{b['s']} missing from the header"
        assert b["text"].strip(), f"{b['s']} is empty"
        assert b["left"] >= b["root"]["left"] - 0.5 and b["right"] <= b["root"]["right"] + 0.5, b
        assert 0 <= b["top"] and b["bottom"] <= b["vh"], b
        assert not b["clipped"], b
    if finished:
        assert "tokens" in boxes[-1]["text"]


def check_following(page: Any) -> None:
    scroll_to_widget_bottom(page)
    page.wait_for_timeout(300)
    grew_from = reply_length(page)
    for _ in range(8):
        page.wait_for_timeout(250)
        vp = viewport(page)
        line = last_line_box(page)
        assert vp["top"] - 1 <= line["top"] and line["bottom"] <= vp["bottom"] + 1, (
            f"the newest line {line} left the viewport {vp} while the reader was at the bottom")
    assert reply_length(page) > grew_from, "the reply did not grow while following was checked"
    still_streaming(page, "following")

    # The reader scrolls up with the wheel: from now on nothing may move under them.
    box = page.locator(".jr-run").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, min(box["y"] + box["height"] - 40, page.viewport_size["height"] - 40))
    page.mouse.wheel(0, -500)
    page.wait_for_timeout(400)
    before = viewport(page)
    anchor = page.evaluate("() => document.querySelector('.jr-run .jr-timeline').getBoundingClientRect().top")
    length = reply_length(page)
    page.wait_for_timeout(1500)
    after = viewport(page)
    assert reply_length(page) > length, "the reply did not grow while the reader was scrolled up"
    assert after["scrollTop"] == before["scrollTop"], (before, after)
    assert page.evaluate("() => document.querySelector('.jr-run .jr-timeline').getBoundingClientRect().top") == anchor
    still_streaming(page, "scrolling up")


def check_tool_cards(page: Any) -> None:
    steps = page.locator('.jr-run details.jr-step[data-type="tool_calls"]')
    assert steps.count() == 2
    # Finished, the 12 calls fold to one summary line per step: the timeline stays compact.
    rows = page.evaluate("""() => [...document.querySelectorAll('.jr-run .jr-timeline > .jr-step')]
        .map((s) => s.getBoundingClientRect().height)""")
    assert len(rows) == 3 and max(rows) < 48, f"folded step rows are {rows} px tall"
    for i in range(steps.count()):
        if not steps.nth(i).evaluate("e => e.open"):
            summary = steps.nth(i).locator(":scope > summary")
            if i == 0:  # by keyboard: focus the summary and press Enter
                summary.focus()
                page.keyboard.press("Enter")
            else:
                summary.click()
        assert steps.nth(i).evaluate("e => e.open")
        assert steps.nth(i).locator(":scope > summary").get_attribute("aria-expanded") == "true"
    cards = page.locator(".jr-run details.jr-tool-call")
    assert cards.count() == 12
    for i in range(12):
        card = cards.nth(i)
        if not card.evaluate("e => e.open"):
            card.locator(":scope > summary").click()
        # Scroll to it and measure in one task, so no frame of the view runs in between.
        fit = card.evaluate(f"""(e) => {{
            e.scrollIntoView({{block: 'nearest'}});
            const vp = ({VIEWPORT_JS})();
            const r = e.getBoundingClientRect();
            const body = e.querySelector('.jr-tool-body').getBoundingClientRect();
            return {{top: r.top, bottom: r.bottom, vp, open: e.open, body: body.height, h: r.height}};
        }}""")
        assert fit["open"] and fit["body"] > 0, fit
        assert fit["vp"]["top"] - 1 <= fit["top"] and fit["bottom"] <= fit["vp"]["bottom"] + 1, (
            f"tool card {i} ({fit['h']:.0f} px) does not fit in view: {fit}")
    # The long output is clipped with a Show more, and showing more keeps it reachable.
    first_report = page.locator('.jr-run .jr-tool-call[data-name="region_report"]').first
    more = first_report.locator(".jr-tool-output .jr-more")
    assert more.is_visible()
    assert "more characters" in more.inner_text()
    still_streaming(page, "the tool cards")


def check_overflow(page: Any, where: str) -> None:
    got = page.evaluate(OVERFLOW_JS)
    assert got["bad"] == [], f"{where}: widget elements stick out sideways: {got['bad'][:8]}"
    return got


def run_geometry(page: Any, lab: Any, name: str, size: dict[str, int], panel: int | None = None) -> None:
    page.set_viewport_size(size)
    nb = lab.write_notebook(f"geometry_{name}.ipynb", [SETUP, TOOLS, run_cell()])
    open_notebook(page, lab, nb)
    if panel:
        set_panel_width(page, panel)
    run_all(page)
    # The reply streams, and its table, code block and URL have arrived.
    page.wait_for_function(
        f"""() => {{
            const m = document.querySelector('{STREAMING}');
            return m && m.querySelector('table') && m.textContent.includes('Paragraph 3');
        }}""", timeout=90_000)
    check_header(page, finished=False)
    got = check_overflow(page, f"{name} streaming")
    if panel:
        assert "TABLE" in got["wide"] and "PRE" in got["wide"], got  # they scroll, they do not squeeze
        prompt_width = page.evaluate("() => document.querySelector('.jr-run .jr-message[data-role=\"user\"] .jr-md').getBoundingClientRect().width")
        assert prompt_width > 0.6 * got["width"], f"the prompt is squeezed to {prompt_width} px"
    check_following(page)
    shoot(page, f"geometry-{name}-streaming-light.png")
    check_tool_cards(page)
    check_overflow(page, f"{name} cards open")
    still_streaming(page, "the overflow with every card open")
    page.wait_for_selector(COMPLETED, timeout=120_000)
    # Then the live view gives way to the static one (what the notebook keeps): the finished
    # checks are made on that, once it has replaced the live DOM.
    page.wait_for_selector(".jr-run.jr-static", timeout=60_000)
    page.wait_for_timeout(300)
    check_header(page, finished=True)
    check_overflow(page, f"{name} finished")
    page.locator(".jr-run .jr-header").scroll_into_view_if_needed()
    shoot(page, f"geometry-{name}-finished-light.png")
    try:
        set_theme(page, "JupyterLab Dark")
        shoot(page, f"geometry-{name}-finished-dark.png")
    finally:
        set_theme(page, "JupyterLab Light")


def test_geometry_at_1366x768(page: Any, lab: Any) -> None:
    run_geometry(page, lab, "1366x768", {"width": 1366, "height": 768})


def test_geometry_at_1920x1080(page: Any, lab: Any) -> None:
    run_geometry(page, lab, "1920x1080", {"width": 1920, "height": 1080})


def test_geometry_in_a_500px_notebook_panel(page: Any, lab: Any) -> None:
    run_geometry(page, lab, "panel500", {"width": 820, "height": 768}, panel=500)


def test_script_has_twelve_calls_and_a_long_reply() -> None:
    calls = [c for t in SCRIPT["turns"] for c in t.get("tool_calls", [])]
    assert len(calls) == 12
    text = SCRIPT["turns"][-1]["text"]
    assert "| metric_11 |" in text and text.count("row_") >= 40
    assert json.dumps(SCRIPT)  # the kernel gets it as a JSON file
