"""A finished run as a static output: sanitized ``text/html`` that looks like the live view, plus
``text/markdown`` and ``text/plain``.

Why: a notebook is reopened without its kernel, executed headless, exported and committed. A widget
view needs a kernel-side model and JavaScript; this bundle needs neither, so what the run said and
did survives all of those. It is the same reducer as the front end (``js/src/view.js`` and
``timeline.js``) written in Python: the input is the widget's reduced state (its traits), the output
reuses the live view's structure and ``jr-`` classes, so swapping it in by display id neither
jumps nor flashes.

Model and tool output is untrusted: markdown goes through markdown-it-py (CommonMark, raw HTML off,
links only to http/https/mailto, images shown as links) and then nh3 (ammonia) against an
allowlist; tool arguments, outputs and stdout go in as escaped text. Only images a tool displayed
(``data:`` PNG/JPEG/GIF/SVG) are shown inline, so nothing in the output fetches a remote URL. The
markdown fallback escapes every character markdown could interpret, so it stays text even in a
renderer that allows raw HTML (see :func:`md_literal`).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypedDict

from .events import message_text, step_tool_calls

#: The live view's class names, in one place: the #11 front end owns them, and a rename there is
#: one edit here (the builder and the stylesheet below both read this table).
CLASS: dict[str, str] = {name: f"jr-{name}" for name in (
    "run", "static", "header", "badge", "dot", "badge-text", "meta", "model", "elapsed", "usage",
    "sep", "error", "body", "prompt", "timeline", "approvals", "messages", "message", "role", "md",
    "md-block", "img-link", "step", "step-head", "step-icon", "step-label",
    "bar-track", "bar", "step-dur", "step-body", "tool-call", "tool-head", "tool-name", "pill",
    "tool-status", "tool-dur", "label", "pre", "tool-args", "tool-output", "tool-output-text",
    "tool-stdout", "tool-stderr", "tool-error", "tool-displays", "display", "display-img",
    "display-html", "display-md", "approval", "approval-title", "approval-kicker", "approval-args",
    "approval-verdict", "clipped", "context", "chip", "chip-label", "chip-text", "reasoning", "reasoning-head",
    "reasoning-label", "reasoning-text",
)}

STATUS_LABEL = {
    "queued": "Queued", "in_progress": "Running", "requires_action": "Waiting for tools",
    "cancelling": "Stopping", "cancelled": "Stopped", "completed": "Completed",
    "incomplete": "Incomplete", "failed": "Failed", "expired": "Expired",
}

# What the saved output keeps (the store keeps everything; `%runs show` shows it again).
MAX_PROMPT = 8_000
MAX_REPLY = 60_000
MAX_TOOL_TEXT = 4_000
MAX_IMAGE = 1_000_000
# The text fallbacks are previews: where HTML renders (Lab, Notebook, VS Code, nbconvert, GitHub)
# it carries the whole conversation, so the fallbacks stay small instead of tripling its bytes.
MAX_FALLBACK_PROMPT = 200
MAX_FALLBACK_REPLY = 300
MAX_FALLBACK_STEPS = 4

_SCHEMES = ("http", "https", "mailto")
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")


class ViewState(TypedDict, total=False):
    """The widget's reduced state (its synced traits): the static view's only input."""

    run: dict[str, Any] | None
    messages: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    records: dict[str, dict[str, Any]]
    approvals: list[dict[str, Any]]
    prompt: str
    meta: dict[str, Any]
    #: Notebook context attached to the prompt (context.py): chips with the exact text sent.
    context: list[dict[str, Any]]
    #: The user's price table (pricing.py), for the run's cost.
    prices: dict[str, Any]
    #: Leave out measured durations (a cassette run: a replayed notebook writes the same bytes).
    timeless: bool


# -- markdown -> sanitized HTML ----------------------------------------------------------------------
_MD_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
            "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
            "span"}
_HTML_TAGS = _MD_TAGS | {"div", "b", "i", "u", "small", "sup", "sub", "caption", "tfoot", "dl", "dt",
                         "dd", "abbr", "kbd", "samp", "var", "mark"}
_ATTRS = {"a": {"href", "title", "class"}, "th": {"style", "align"}, "td": {"style", "align"}, "ol": {"start"},
          "span": {"class"}, "code": {"class"}, "abbr": {"title"}}


def sanitize(fragment: str, *, tags: set[str] = _MD_TAGS) -> str:
    """nh3 with our allowlist: no script, style, forms, frames, media or event handlers; links only
    to http/https/mailto; inline style only ``text-align`` (markdown table alignment)."""
    import nh3

    return nh3.clean(fragment, tags=tags, attributes=_ATTRS, url_schemes=set(_SCHEMES),
                     url_relative="deny", filter_style_properties={"text-align"},
                     clean_content_tags={"script", "style"})


def _scheme_ok(url: str) -> bool:
    # What the browser will see: control characters and whitespace are dropped inside schemes.
    squashed = re.sub(r"[\x00-\x20]+", "", url).lower()
    match = re.match(r"([a-z][a-z0-9+.\-]*):", squashed)
    return bool(match) and match.group(1) in _SCHEMES


_MARKDOWN: Any = None


def _markdown() -> Any:
    global _MARKDOWN
    if _MARKDOWN is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
        md.enable(["table", "strikethrough"])
        # A link the browser must not follow never becomes a link: it stays literal text.
        md.validateLink = _scheme_ok

        def image(_self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
            # A remote image in model text is a request the reader never chose (and an
            # exfiltration channel); show it as a link to click instead.
            token = tokens[idx]
            src = token.attrGet("src") or ""
            alt = "image: " + (md.renderer.renderInlineAsText(token.children or [], options, env) or src)
            if not _scheme_ok(src):
                return html.escape(f"[{alt}]")
            return (f'<a class="{CLASS["img-link"]}" href="{html.escape(src)}">'
                    f"{html.escape(alt)}</a>")

        md.add_render_rule("image", image)
        _MARKDOWN = md
    return _MARKDOWN


def render_markdown(text: str) -> str:
    """Untrusted markdown -> sanitized HTML (two layers: one is one bug away from an XSS)."""
    return _squeeze(sanitize(_markdown().render(text or "")))


def _squeeze(html_: str) -> str:
    # markdown-it ends every block with a newline; a saved notebook stores each line as its own
    # JSON string. Between tags (never inside <pre>) the newline means nothing.
    parts = re.split(r"(<pre[\s\S]*?</pre>)", html_)
    joined = "".join(p if p.startswith("<pre") else re.sub(r">\n+(?=<|$)", ">", p) for p in parts)
    return re.sub(r"</pre>\n+", "</pre>", joined)


# highlight.js class names (the live view's highlighter) for Pygments token types, so highlighted
# code keeps its colours when the static view replaces the live one.
_HL = (("Comment", "comment"), ("Literal.String", "string"), ("Literal.Number", "number"),
       ("Keyword.Constant", "literal"), ("Keyword", "keyword"), ("Name.Builtin", "built_in"),
       ("Name.Function", "title function_"), ("Name.Class", "title"), ("Name.Decorator", "meta"),
       ("Name.Attribute", "attr"), ("Name.Tag", "name"), ("Name.Variable", "variable"))
_HL_LANGS = {"python": "python", "py": "python", "json": "json", "bash": "bash", "sh": "bash",
             "shell": "bash", "console": "bash", "zsh": "bash", "sql": "sql", "javascript": "javascript",
             "js": "javascript", "mjs": "javascript", "node": "javascript"}


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    name = _HL_LANGS.get((lang or "").strip().lower())
    if name is None:
        return ""  # markdown-it escapes it as plain code
    try:
        from pygments.lexers import get_lexer_by_name
        from pygments.token import string_to_tokentype
    except ImportError:
        return ""
    kinds = [(string_to_tokentype(t), cls) for t, cls in _HL]
    out = []
    for ttype, value in get_lexer_by_name(name).get_tokens(code):
        cls = next((c for t, c in kinds if ttype in t), None)
        text = html.escape(value, quote=False)
        if cls is None:
            out.append(text)
        else:
            classes = " ".join(f"jr-hl-{c}" for c in cls.split())
            out.append(f'<span class="{classes}">{text}</span>')
    return "".join(out)


# -- small formatting helpers, as the front end does them ---------------------------------------------
def format_seconds(s: float | None) -> str:
    """``formatSeconds`` of js/src/timeline.js."""
    if s is None or not isinstance(s, (int, float)) or s != s or s in (float("inf"), float("-inf")):
        return ""
    if s < 0.001:
        return "<1 ms"
    if s < 1:
        return f"{max(0, round(s * 1000))} ms"
    if s < 60:
        return f"{s:.{2 if s < 10 else 1}f} s"
    m = int(s // 60)
    return f"{m}m {round(s - m * 60)}s"


def pretty_args(args: Any) -> str:
    """``prettyArgs`` of js/src/timeline.js: pretty JSON, on one line when short."""
    if args is None:
        return ""
    value = args
    if isinstance(args, str):
        if not args.strip():
            return ""
        try:
            value = json.loads(args)
        except ValueError:
            return args
    pretty = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    flat = re.sub(r"\n\s*", " ", pretty)
    return flat if len(flat) <= 72 else pretty


def clip(text: Any, limit: int) -> tuple[str, int]:
    """``(kept, dropped)``: the first ``limit`` characters and how many more there were."""
    text = "" if text is None else str(text)
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _more(n: int) -> str:
    return f"… {n:,} more characters"


# -- the reduced state, read as the front end reads it ------------------------------------------------
def _status(state: ViewState) -> str:
    run = state.get("run") or {}
    meta = state.get("meta") or {}
    return run.get("status") or ("failed" if meta.get("error") else "queued")


def _error_text(state: ViewState) -> str:
    run = state.get("run") or {}
    meta_error = (state.get("meta") or {}).get("error") or {}
    err = (run.get("last_error") or {}).get("message") or (
        meta_error.get("message") if _status(state) == "failed" or not state.get("run") else "") or ""
    reason = (run.get("incomplete_details") or {}).get("reason")
    return str(err or (f"Incomplete: {reason}" if reason else ""))


def _replies(state: ViewState) -> list[tuple[str, str]]:
    """(role, text) of the messages the view lists: the prompt is shown once, above them."""
    prompt = (state.get("prompt") or "").strip()
    out = []
    for msg in state.get("messages") or []:
        role = msg.get("role") or "assistant"
        text = message_text(msg)
        if role == "user" and prompt and text.strip() == prompt:
            continue
        out.append((role, text))
    return out


def _prompt(state: ViewState) -> str:
    if state.get("prompt"):
        return str(state["prompt"])
    return "\n\n".join(message_text(m) for m in state.get("messages") or [] if m.get("role") == "user")


def _call_status(call: Mapping[str, Any], record: Mapping[str, Any] | None,
                 approvals: Mapping[str, Mapping[str, Any]], terminal: bool) -> str:
    fn = call.get("function") or {}
    asked = approvals.get(call.get("id") or "")
    if record and record.get("status"):
        return str(record["status"])
    if fn.get("output") is not None:
        return "completed"
    if asked and asked.get("status") == "denied":
        return "denied"
    return "not run" if terminal else "running"


def _reasoning_text(step: Mapping[str, Any]) -> str:
    return str(((step.get("step_details") or {}).get("reasoning") or {}).get("summary") or "")


def _step_label(step: Mapping[str, Any]) -> str:
    if _step_type(step) == "reasoning":
        return "Thinking" if step.get("status") == "in_progress" else "Thought"
    if _step_type(step) != "tool_calls":
        return "Writing reply" if step.get("status") == "in_progress" else "Reply"
    counts: dict[str, int] = {}
    for call in step_tool_calls(step):
        name = (call.get("function") or {}).get("name") or call.get("type")
        if name:
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} ×{k}" if k > 1 else n for n, k in counts.items()) or "Tool calls"


def _step_type(step: Mapping[str, Any]) -> str:
    return step.get("type") or (step.get("step_details") or {}).get("type") or "message_creation"


# -- HTML ----------------------------------------------------------------------------------------------
def _el(tag: str, cls: str | None, content: str = "", **attrs: Any) -> str:
    """One element; ``content`` is HTML the caller built (escaped text or sanitized markup)."""
    names = " ".join(CLASS[c] for c in cls.split()) if cls else ""
    # Single quotes: the saved notebook is JSON, where every double quote would cost a backslash.
    bits = [tag] + ([f"class='{names}'"] if names else [])
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        bits.append(key if value is True else f"{key}='{html.escape(str(value))}'")
    return f"<{' '.join(bits)}>{content}</{tag}>"


def _text(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=False)


def _clipped_pre(cls: str, value: Any, limit: int = MAX_TOOL_TEXT) -> str:
    kept, more = clip(value, limit)
    tail = _el("span", "clipped", _text("\n" + _more(more))) if more else ""
    return _el("pre", f"pre {cls}", _text(kept) + tail)


def _markdown_block(text: str, limit: int) -> str:
    kept, more = clip(text, limit)
    body = render_markdown(kept)
    if more:
        body += _el("p", "clipped", _text(_more(more)))
    return _el("div", "md", _el("div", "md-block", body))


def _message_html(role: str, text: str, limit: int) -> str:
    who = "You" if role == "user" else "Assistant"
    return _el("div", "message", _el("div", "role", who) + _markdown_block(text, limit),
               data_role=role)


def _display_html(bundle: Mapping[str, Any]) -> str:
    img = next((t for t in _IMAGE_TYPES if isinstance(bundle.get(t), str)), None)
    if img:
        data = re.sub(r"\s", "", bundle[img])
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return ""
        if len(data) > MAX_IMAGE:
            return _el("div", "display", _text(f"[image omitted from the saved output: {len(data):,} bytes]"))
        return _el("div", "display", f'<img class="{CLASS["display-img"]}" alt="tool display" '
                                     f'src="data:{img};base64,{data}">')
    if isinstance(bundle.get("image/svg+xml"), str):
        # As an <img>, an SVG runs no script and loads nothing.
        svg = bundle["image/svg+xml"]
        if len(svg) > MAX_IMAGE:
            return _el("div", "display", _text(f"[image omitted from the saved output: {len(svg):,} bytes]"))
        src = "data:image/svg+xml;charset=utf-8," + urllib.parse.quote(svg)
        return _el("div", "display", f'<img class="{CLASS["display-img"]}" alt="tool display" src="{src}">')
    if isinstance(bundle.get("text/html"), str):
        kept, more = clip(bundle["text/html"], MAX_TOOL_TEXT * 4)
        return _el("div", "display", _el("div", "display-html", sanitize(kept, tags=_HTML_TAGS)
                                         + (_el("p", "clipped", _text(_more(more))) if more else "")))
    if isinstance(bundle.get("text/markdown"), str):
        kept, _ = clip(bundle["text/markdown"], MAX_TOOL_TEXT)
        return _el("div", "display", _el("div", "display-md md", render_markdown(kept)))
    if bundle.get("text/plain") is not None:
        return _el("div", "display", _clipped_pre("", bundle["text/plain"]))
    return ""


def _tool_call_html(call: Mapping[str, Any], record: Mapping[str, Any] | None,
                    approvals: Mapping[str, Mapping[str, Any]], terminal: bool,
                    timeless: bool = False) -> str:
    fn = call.get("function") or {}
    name = fn.get("name") or (record or {}).get("name") or call.get("type") or "tool"
    status = _call_status(call, record, approvals, terminal)
    dur = None
    if record and record.get("started_at") is not None and record.get("ended_at") is not None \
            and not timeless:
        dur = record["ended_at"] - record["started_at"]
    head = _el("div", "tool-head", _el("span", "tool-name", _text(name))
               + _el("span", "sep", " — ") + _el("span", "pill tool-status", _text(status), data_status=status)
               + (_el("span", "tool-dur", _text(" " + format_seconds(dur))) if dur is not None else ""))
    args = record.get("arguments") if record and record.get("arguments") is not None \
        and not isinstance(record.get("arguments"), str) else fn.get("arguments")
    parts = [head, _el("div", "label", "args"), _clipped_pre("tool-args", pretty_args(args))]
    output = fn.get("output") if fn.get("output") is not None else (record or {}).get("output")
    if output is not None:
        parts += [_el("div", "label", "output"),
                  _el("div", "tool-output", _clipped_pre("tool-output-text", output))]
    for key in ("stdout", "stderr"):
        if (record or {}).get(key):
            parts += [_el("div", "label", key), _clipped_pre(f"tool-{key}", record[key])]  # type: ignore[index]
    if (record or {}).get("error"):
        parts.append(_el("div", "tool-error", _text(clip(record["error"], MAX_TOOL_TEXT)[0])))  # type: ignore[index]
    displays = "".join(_display_html(b) for b in (record or {}).get("displays") or [] if isinstance(b, Mapping))
    if displays:
        parts.append(_el("div", "tool-displays", displays))
    return _el("div", "tool-call", "".join(parts), data_name=name, data_status=status)


def _timeline_html(state: ViewState, terminal: bool) -> str:
    steps = state.get("steps") or []
    if not steps:
        return ""
    meta = state.get("meta") or {}
    timings: dict[str, list[float | None]] = meta.get("timings") or {}
    elapsed = float(meta.get("elapsed") or 0)
    ends = [b if b is not None else (a or 0) for a, b in timings.values()] if timings else []
    total = max([elapsed, 0.001, *ends])
    records = state.get("records") or {}
    approvals = {a.get("id"): a for a in state.get("approvals") or []}
    timeless = bool(state.get("timeless"))
    rows = []
    for i, step in enumerate(steps):
        if _step_type(step) == "reasoning":
            rows.append(_reasoning_html(step, steps[i + 1] if i + 1 < len(steps) else None,
                                        timings, total, timeless))
            continue
        start, end = (timings.get(step.get("id") or "") or [None, None])[:2]
        if end is None:
            end = start
        bar, dur = "", ""
        if start is not None and total > 0 and not timeless:
            left = min(100.0, start / total * 100)
            width = max(0.8, min(100 - left, (end - start) / total * 100))
            bar = f"left:{left:.2f}%;width:{width:.2f}%"
            dur = format_seconds(end - start)
        status = step.get("status") or "in_progress"
        head = (_el("span", "step-icon", "")
                + _el("span", "step-label", _text(_step_label(step)))
                + _el("span", "bar-track", _el("span", "bar", "", style=bar or None))
                + _el("span", "step-dur", _text(dur and f" {dur}")))
        calls = "".join(_tool_call_html(c, records.get(c.get("id") or ""), approvals, terminal, timeless)
                        for c in step_tool_calls(step))
        body = _el("div", "step-body", calls) if calls else ""
        # As the live view (#11): a finished step folds to its summary line; one still running
        # (a run stopped mid-tool) stays open. <details> needs no script to unfold.
        rows.append(_el("details", "step", _el("summary", "step-head", head) + body,
                        open=bool(calls) and status == "in_progress", data_type=_step_type(step),
                        data_status=status))
    return _el("div", "timeline", "".join(rows))


def _reasoning_html(step: Mapping[str, Any], after: Mapping[str, Any] | None,
                    timings: Mapping[str, list[float | None]], total: float, timeless: bool) -> str:
    """A reasoning step as js/src/reasoning.js draws it once done: collapsed to "Thought for
    2.3 s · 500 reasoning tokens" (the count rides on the usage of the step it led to), opening
    to the summary rendered like the reply."""
    start, end = (timings.get(step.get("id") or "") or [None, None])[:2]
    took = end - start if start is not None and end is not None and not timeless else None
    tokens = None
    for usage in ((step.get("usage") or {}), ((after or {}).get("usage") or {})):
        n = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        if isinstance(n, int):
            tokens = n
            break
    status = step.get("status") or "in_progress"
    bits = ["Thinking…" if status == "in_progress" else
            (f"Thought for {format_seconds(took)}" if took is not None else "Thought")]
    if tokens is not None:
        bits.append(f"{tokens:,} reasoning tokens")
    bar = ""
    if took is not None and total > 0:
        left = min(100.0, (start or 0) / total * 100)
        bar = f"left:{left:.2f}%;width:{max(0.8, min(100 - left, took / total * 100)):.2f}%"
    head = (_el("span", "step-icon", "") + _el("span", "step-label reasoning-label", _text(" · ".join(bits)))
            + _el("span", "bar-track", _el("span", "bar", "", style=bar or None))
            + _el("span", "step-dur", _text(format_seconds(took) if took is not None else "")))
    body = _el("div", "reasoning-text md", render_markdown(clip(_reasoning_text(step), MAX_TOOL_TEXT)[0]))
    return _el("details", "step reasoning", _el("summary", "step-head reasoning-head", head) + body,
               data_type="reasoning", data_status=status, data_tokens="" if tokens is None else tokens)


def _context_html(state: ViewState) -> str:
    """The attached notebook context as the live view's chips: each opens to the exact text the
    model received (escaped: it can hold anything a variable held)."""
    chips = state.get("context") or []
    if not chips:
        return ""
    items = "".join(
        _el("details", "chip", _el("summary", "chip-label", _text(c.get("label") or c.get("name")))
            + _clipped_pre("chip-text", c.get("text") or "", MAX_TOOL_TEXT)) for c in chips)
    return _el("div", "context", items)


def usage_line(state: ViewState) -> str:
    """Tokens (with cached and reasoning ones when reported) and the cost when prices are set,
    as the live header's ``usageLine`` writes them."""
    run = state.get("run") or {}
    usage = run.get("usage") or {}
    parts = [f"{usage.get('prompt_tokens') or 0:,} in"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached:
        parts.append(f"{cached:,} cached")
    parts.append(f"{usage.get('completion_tokens') or 0:,} out")
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        parts.append(f"{reasoning:,} reasoning")
    parts.append(f"{usage.get('total_tokens') or 0:,} tokens")
    cost = _cost(state)
    if cost is not None:
        parts.append(cost)
    return " · ".join(parts)


def _cost(state: ViewState) -> str | None:
    from .pricing import price_for, run_cost

    run = state.get("run") or {}
    prices = state.get("prices") or {}
    if not prices:
        return None
    cost = run_cost(run.get("usage") or {}, price_for(prices, run.get("model") or ""))
    if cost is None:
        return None
    # formatCost of js/src/reasoning.js, so the cost reads the same live and saved
    if cost == 0:
        return "$0"
    if cost < 0.01:  # three significant digits, as toPrecision(3)
        return f"${cost:.{2 - math.floor(math.log10(cost))}f}"
    return f"${cost:.{3 if cost < 1 else 2}f}"


def _approvals_html(state: ViewState) -> str:
    items = state.get("approvals") or []
    if not items:
        return ""
    cards = []
    for item in items:
        status = item.get("status") or "pending"
        verdict = {"approved": "Approved", "denied": "Denied",
                   "cancelled": "Not run: the run was stopped"}.get(status, "Not answered")
        title = _el("div", "approval-title", _el("span", "approval-kicker", "Approve tool call")
                    + _el("span", "sep", " ") + _el("span", "tool-name", _text(item.get("name"))))
        cards.append(_el("div", "approval", title + _clipped_pre("approval-args", pretty_args(item.get("arguments")))
                         + _el("span", "approval-verdict", verdict), data_status=status))
    return _el("div", "approvals", "".join(cards))


def to_html(state: ViewState) -> str:
    """The static view: the live view's DOM and classes, readable even with ``<style>`` removed."""
    run = state.get("run") or {}
    status = _status(state)
    terminal = status in ("cancelled", "completed", "incomplete", "failed", "expired")
    meta = state.get("meta") or {}
    usage = run.get("usage") or {}
    bits = [_el("span", "model", _text(run.get("model"))) if run.get("model") else "",
            _el("span", "elapsed", _text(format_seconds(float(meta.get("elapsed") or 0))))
            if run and not state.get("timeless") else "",
            _el("span", "usage", _text(usage_line(state))) if usage else ""]
    sep = _el("span", "sep", " · ")
    badge = _el("span", "badge", _el("span", "dot", "") + _el("span", "badge-text", _text(STATUS_LABEL.get(status, status))))
    header = _el("div", "header", badge + sep + _el("span", "meta", sep.join(b for b in bits if b)))
    error = _error_text(state)
    prompt = _prompt(state)
    body = ""
    if prompt:
        body += _el("div", "prompt", _message_html("user", prompt, MAX_PROMPT))
    body += _context_html(state)
    body += _timeline_html(state, terminal) + _approvals_html(state)
    replies = _replies(state)
    if replies:
        body += _el("div", "messages", "".join(_message_html(r, t, MAX_REPLY) for r, t in replies))
    root = _el("div", "run static", header + (_el("div", "error", _text(error), role="alert") if error else "")
               + _el("div", "body", body), data_status=status)
    return f"<style>{STYLE}</style>{root}"


# -- text/markdown and text/plain ------------------------------------------------------------------------
# Backslash escapes (CommonMark: an escaped punctuation character is literal) for what can start a
# link, image, reference, footnote, code span or math; ``<>&"`` become entities instead.
_ACTIVE = re.compile(r"([\\`\[\]$])")


def md_literal(text: str) -> str:
    """Model text for the markdown fallback, safe in any renderer, raw HTML allowed or not.

    Why not a fenced code block: a fence is only literal in a CommonMark block context (a list item
    or quote around it ends it early; a renderer without fences renders its content as markdown).
    Why not escaping ``<`` alone (what the old ``_md_safe`` did): code spans, fences it mistracked
    and link syntax each reopened a hole. Here nothing that can make a tag, an entity, a link, an
    image, a code span or math survives: ``<>&"`` are entity-encoded (``&amp;`` first, so an
    entity-encoded scheme stays text), ``\\ ` [ ] $`` are backslash-escaped, leading spaces
    become no-break spaces (no indented code) and line breaks are hard breaks. Emphasis, lists and
    headings still render, which keeps a reply readable.
    """
    lines = []
    for line in str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.lstrip(" \t")
        lead = "\u00a0" * (len(line) - len(stripped))
        escaped = stripped.rstrip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = _ACTIVE.sub(r"\\\1", escaped.replace('"', "&quot;"))
        lines.append(lead + escaped)
    out, para = [], []
    for line in lines:
        if line.strip():
            para.append(line)
        elif para:
            out.append("  \n".join(para))
            para = []
    if para:
        out.append("  \n".join(para))
    return "\n\n".join(out)


def _one_line(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fallback_steps(state: ViewState) -> list[str]:
    meta = state.get("meta") or {}
    timings = meta.get("timings") or {}
    records = state.get("records") or {}
    lines = []
    for step in state.get("steps") or []:
        start, end = (timings.get(step.get("id") or "") or [None, None])[:2]
        secs = end - start if start is not None and end is not None else None
        when = f" {secs:.2f}s" if secs is not None and not state.get("timeless") else ""
        if _step_type(step) == "tool_calls":
            for call in step_tool_calls(step):
                fn = call.get("function") or {}
                rec = records.get(call.get("id") or "") or {}
                out = fn.get("output") if fn.get("output") is not None else rec.get("output")
                line = (f"{fn.get('name') or call.get('type')}({_one_line(fn.get('arguments'), 80)}) "
                        f"[{rec.get('status') or step.get('status')}]{when}")
                lines.append(line + (f" -> {_one_line(out, 100)}" if out is not None and str(out) else ""))
        else:
            kind = "reasoning" if _step_type(step) == "reasoning" else "message"
            lines.append(f"{kind} [{step.get('status')}]{when}")
    if len(lines) > MAX_FALLBACK_STEPS:
        lines = lines[:MAX_FALLBACK_STEPS] + [f"… {len(lines) - MAX_FALLBACK_STEPS} more steps"]
    return lines


def status_line(state: ViewState) -> str:
    run = state.get("run") or {}
    meta = state.get("meta") or {}
    bits = [f"Run {_status(state)}"]
    if run.get("model"):
        bits.append(str(run["model"]))
    if not state.get("timeless"):
        bits.append(f"{float(meta.get('elapsed') or 0):.1f} s")
    tokens = (run.get("usage") or {}).get("total_tokens")
    if tokens is not None:
        bits.append(f"{tokens} tokens")
    cost = _cost(state)
    if cost is not None:
        bits.append(cost)
    error = _error_text(state)
    return " · ".join(bits) + (f" — {_one_line(error, 300)}" if error else "")


def _fallback_reply(state: ViewState) -> str:
    return "\n\n".join(t for r, t in _replies(state) if r == "assistant").strip()


def _clip_text(text: str, limit: int) -> str:
    kept, more = clip(text, limit)
    return kept + (f"\n{_more(more)}" if more else "")


def to_text(state: ViewState) -> str:
    """The plain-text preview: prompt, reply, steps, final status."""
    lines = []
    prompt = _prompt(state)
    if prompt:
        lines += [f"You: {_clip_text(prompt, MAX_FALLBACK_PROMPT)}", ""]
    if state.get("context"):
        lines += ["Context: " + ", ".join(str(c.get("label") or c.get("name")) for c in state["context"]), ""]
    reply = _fallback_reply(state)
    if reply:
        lines += [f"Assistant: {_clip_text(reply, MAX_FALLBACK_REPLY)}", ""]
    lines += [f"  - {s}" for s in _fallback_steps(state)]
    lines.append(status_line(state))
    return "\n".join(lines).strip()


def to_markdown(state: ViewState) -> str:
    """The markdown preview: our own structure around model text made literal by :func:`md_literal`."""
    parts = []
    prompt = _prompt(state)
    if prompt:
        parts.append("**You:**\n\n" + md_literal(_clip_text(prompt, MAX_FALLBACK_PROMPT)))
    if state.get("context"):
        parts.append("**Context:** " + md_literal(", ".join(
            str(c.get("label") or c.get("name")) for c in state["context"])))
    reply = _fallback_reply(state)
    if reply:
        parts.append("**Assistant:**\n\n" + md_literal(_clip_text(reply, MAX_FALLBACK_REPLY)))
    calls = sum(len(step_tool_calls(s)) for s in state.get("steps") or [] if _step_type(s) == "tool_calls")
    tail = f" · {calls} tool call{'s' if calls != 1 else ''}" if calls else ""
    # The steps themselves are in the HTML and the plain text; here, only how many there were.
    parts.append("*" + md_literal(status_line(state) + tail) + "*")
    return "\n\n".join(parts)


def bundle(state: ViewState) -> dict[str, str]:
    """The display bundle of a finished run: no widget mimetype, nothing that needs a kernel."""
    return {"text/html": to_html(state), "text/markdown": to_markdown(state), "text/plain": to_text(state)}


# -- the stylesheet ---------------------------------------------------------------------------------------
# A compact subset of js/src/styles.css for the finished state (no caret, buttons or animation),
# scoped to jr- classes. Colours fall back from VS Code to JupyterLab to plain light/dark values.
# Each saved run carries one copy, so it is kept small (test_static_view checks the budget). The
# -20px undoes the right padding JupyterLab and nbconvert give rendered HTML (a widget output has
# none), so the swap keeps the run's width.
_CSS = """
.$run{--f0:#1f2328;--b0:#fff;--a0:#2f6feb;--f:var(--vscode-editor-foreground,var(--jp-ui-font-color0,var(--f0)));--b:var(--vscode-editor-background,var(--jp-layout-color0,var(--b0)));--a:var(--vscode-focusBorder,var(--jp-brand-color1,var(--a0)));--m:color-mix(in srgb,var(--f) 62%,var(--b));--s:color-mix(in srgb,var(--f) 5%,var(--b));--l:color-mix(in srgb,var(--f) 17%,var(--b));--ok:#2da44e;--w:#bf8700;--x:#e5534b;--mono:var(--jp-code-font-family,ui-monospace,monospace);font:13px/1.5 var(--jp-ui-font-family,system-ui,sans-serif);color:var(--f);background:var(--b);border:1px solid var(--l);border-radius:8px;overflow:hidden;max-width:980px}
@media (prefers-color-scheme:dark){.$run{--f0:#e6edf3;--b0:#0d1117;--a0:#4493f8}}
.$run *{box-sizing:border-box}.$sep{display:none}.jp-RenderedHTMLCommon>.$run{margin-right:-20px;width:calc(100% + 20px)}
.$header{display:flex;align-items:center;gap:10px;padding:8px 12px;background:var(--s);border-bottom:1px solid var(--l)}
.$badge{--t:var(--a);display:flex;align-items:center;gap:6px;padding:2px 10px 2px 8px;border-radius:99px;font-weight:600;font-size:12px;color:var(--t);background:color-mix(in srgb,var(--t) 13%,#0000)}
.$dot{width:8px;height:8px;border-radius:50%;background:var(--t)}
[class^=jr-][data-status=completed]>*>*{--t:var(--ok)}[class^=jr-]:is([data-status=failed],[data-status=expired])>*>*{--t:var(--x)}[class^=jr-]:is([data-status=cancelled],[data-status=incomplete])>*>*{--t:var(--m)}.$body>*{--t:initial}
.$meta{display:flex;gap:12px;color:var(--m);font-size:12px;white-space:nowrap;overflow:hidden}.$model,.$tool-name,pre.$pre,.$md code{font-family:var(--mono)}
.$error{padding:8px 12px;color:var(--x);white-space:pre-wrap}
:is(.$body,.$messages,.$timeline,.$step-body,.$tool-displays){display:flex;flex-direction:column;gap:10px}.$body{padding:10px 12px}
.$message{display:grid;grid-template-columns:74px 1fr;gap:8px;align-items:baseline}
:is(.$role,.$label){font-size:11px;font-weight:700;text-transform:uppercase;color:var(--m)}[data-role=assistant]>.$role{color:var(--a)}[data-role=user]>.$md{background:var(--s);border-radius:8px;padding:6px 10px}
.$md{min-width:0;overflow-wrap:anywhere}.$md :is(p,ul,ol,pre,blockquote,table){margin:0 0 .6em}.$md-block>:last-child{margin-bottom:0}.$md a{color:var(--a)}
.$md code{background:var(--s);padding:.1em .35em;border-radius:4px}.$md pre{background:var(--s);border:1px solid var(--l);border-radius:6px;padding:8px 10px;overflow-x:auto}
.$md table{border-collapse:collapse}.$md :is(th,td){border:1px solid var(--l);padding:3px 8px}
.$timeline{gap:0;border:1px solid var(--l);border-radius:8px}.$step+.$step{border-top:1px solid var(--l)}
.$step-head{display:grid;grid-template-columns:14px minmax(90px,1fr) minmax(80px,2fr) 64px;align-items:center;gap:8px;padding:5px 10px;font-size:12px;list-style:none}.$step-head::-webkit-details-marker{display:none}
.$step-icon{width:10px;height:10px;border-radius:50%;border:2px solid var(--t,var(--a));background:var(--t)}
.$step-label{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.$bar-track{position:relative;height:6px;border-radius:3px;background:var(--s)}.$bar{position:absolute;top:0;bottom:0;border-radius:3px;background:var(--a)}[data-type=tool_calls] .$bar{background:var(--w)}
:is(.$step-dur,.$tool-dur){text-align:right;color:var(--m)}.$step-body{padding:0 10px 8px 32px;gap:8px}
.$tool-call{display:grid;grid-template-columns:52px minmax(0,1fr);gap:4px 8px;align-items:baseline;border:1px solid var(--l);border-radius:6px;padding:6px 10px}
:is(.$tool-head,.$tool-error,.$tool-displays){grid-column:1/-1}.$tool-head{display:flex;gap:8px}.$tool-dur{margin-left:auto}
.$pill{font-size:11px;padding:0 7px;border-radius:99px;background:var(--s);color:var(--t,var(--m))}:is(.$tool-stderr,.$tool-error){color:var(--x)}
pre.$pre{margin:0;padding:6px 8px;font-size:12px;background:var(--s);border-radius:5px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:360px;overflow:auto}.$clipped{color:var(--m)}
.$display-img{max-width:100%;background:#fff}.$context{display:flex;flex-wrap:wrap;gap:6px}.$reasoning-text{padding:0 10px 8px 32px}.$chip{border:1px solid var(--l);border-radius:8px;padding:0 8px}.$approval{border-left:4px solid var(--w);padding:4px 10px}
.jr-hl-keyword,.jr-hl-built_in{color:#cf222e}.jr-hl-string{color:#0a3069}.jr-hl-number{color:#0550ae}.jr-hl-comment{color:#6e7781}
"""

#: ``$name`` in the stylesheet is ``CLASS[name]`` (an unknown name fails at import, in every test).
STYLE = re.sub(r"\$([a-z]+(?:-[a-z]+)*)", lambda m: CLASS[m.group(1)], _CSS).replace("\n", "")

__all__ = ["CLASS", "ViewState", "bundle", "md_literal", "render_markdown", "sanitize", "to_html",
           "to_markdown", "to_text"]
