"""A thread as a file: export to JSON, markdown or HTML, and import a JSON export back.

The JSON export is the lossless one (thread, messages, runs, their steps with tool calls, as the
API returns them), versioned so a later release can still read it. Markdown and HTML are for
people: the conversation with each tool call's arguments and output, model text kept inert (code
fences longer than any backtick run in it, escaped HTML), since an export is opened in viewers that
render raw HTML.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

EXPORT_VERSION = 1
FORMATS = ("json", "md", "html")


async def collect(client: Any, thread_id: str) -> dict[str, Any]:
    """Everything stored for ``thread_id`` through the public API (any backend)."""
    thread = await client.threads.retrieve(thread_id)
    messages = await client.messages.list(thread_id, order="asc", limit=100).to_list()
    runs = await client.runs.list(thread_id, order="asc", limit=100).to_list()
    out_runs = []
    for run in runs:
        steps = await client.steps.list(thread_id, run["id"], order="asc", limit=100).to_list()
        out_runs.append({**_plain(run), "steps": [_plain(s) for s in steps]})
    return {
        "object": "thread.export",
        "version": EXPORT_VERSION,
        "thread": _plain(thread),
        "messages": [_plain(m) for m in messages],
        "runs": out_runs,
    }


def _plain(obj: Any) -> Any:
    """A wire object as plain JSON data."""
    return json.loads(json.dumps(obj, default=lambda o: dict(o)))


async def restore(client: Any, export: Mapping[str, Any], metadata: Mapping[str, str] | None) -> Any:
    """A new thread holding the export's messages, in order, with their roles and metadata."""
    if export.get("object") != "thread.export" or not isinstance(export.get("messages"), list):
        raise ValueError("not a jupyter_runs thread export (expected \"object\": \"thread.export\")")
    if int(export.get("version") or 0) > EXPORT_VERSION:
        raise ValueError(f"this export is version {export['version']}; this jupyter_runs reads up "
                         f"to version {EXPORT_VERSION}")
    meta = dict(metadata) if metadata is not None else {
        k: v for k, v in ((export.get("thread") or {}).get("metadata") or {}).items()
        if k != "jupyter_runs_name"}
    meta["jupyter_runs_imported_from"] = str((export.get("thread") or {}).get("id") or "")[:512]
    thread = await client.threads.create(metadata=meta)
    for message in export["messages"]:
        await client.messages.create(
            thread["id"], role=message.get("role") or "user", content=message_text(message),
            metadata=message.get("metadata") or None,
        )
    return thread


def message_text(message: Mapping[str, Any]) -> str:
    return "\n\n".join(
        part["text"]["value"] for part in message.get("content") or ()
        if part.get("type") == "text")


def _tool_calls(export: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function calls of each run, by run id, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in export.get("runs") or ():
        calls = out.setdefault(run["id"], [])
        for step in run.get("steps") or ():
            for call in (step.get("step_details") or {}).get("tool_calls") or ():
                if call.get("type") == "function":
                    calls.append(call["function"])
    return out


def _fence(text: str, info: str = "") -> str:
    """``text`` as a fenced code block no backtick run inside it can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _events(export: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The conversation in order: ("user" | "assistant", text) and ("tool", call) items."""
    calls = _tool_calls(export)
    shown: set[str] = set()
    out: list[tuple[str, Any]] = []
    for message in export.get("messages") or ():
        run_id = message.get("run_id")
        if run_id and run_id not in shown:
            shown.add(run_id)
            out += [("tool", call) for call in calls.get(run_id, ())]
        out.append((message.get("role") or "user", message_text(message)))
    return out


def to_markdown(export: Mapping[str, Any]) -> str:
    """The conversation as markdown that stays inert in renderers allowing raw HTML: every text
    goes in a fence (model text is untrusted; a fence shows it as written)."""
    name = ((export.get("thread") or {}).get("metadata") or {}).get("jupyter_runs_name")
    parts = [f"# Thread {_inline(name or export['thread']['id'])}"]
    for kind, item in _events(export):
        if kind == "tool":
            parts.append(f"**Tool call** `{_inline(item.get('name'))}`\n\n"
                         + _fence(str(item.get("arguments") or ""), "json")
                         + "\n\n" + _fence(str(item.get("output") if item.get("output") is not None else "")))
        else:
            parts.append(f"**{'You' if kind == 'user' else 'Assistant'}:**\n\n" + _fence(item, "text"))
    return "\n\n".join(parts) + "\n"


def _inline(text: Any) -> str:
    return re.sub(r"[`<>\[\]\\*_]", "", str(text))


def to_html(export: Mapping[str, Any]) -> str:
    """A standalone page; every text is escaped and shown preformatted."""
    name = ((export.get("thread") or {}).get("metadata") or {}).get("jupyter_runs_name")
    rows = []
    for kind, item in _events(export):
        if kind == "tool":
            rows.append(
                '<details class="jr-step"><summary>Tool call '
                f"<code>{html.escape(str(item.get('name')))}</code></summary>"
                f"<pre>{html.escape(str(item.get('arguments') or ''))}</pre>"
                f"<pre>{html.escape(str(item.get('output') if item.get('output') is not None else ''))}</pre>"
                "</details>")
        else:
            who = "You" if kind == "user" else "Assistant"
            rows.append(f'<section class="jr-msg jr-{kind}"><h2>{who}</h2>'
                        f'<pre style="white-space:pre-wrap">{html.escape(item)}</pre></section>')
    title = html.escape(str(name or export["thread"]["id"]))
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{title}</title></head><body><h1>Thread {title}</h1>"
            + "".join(rows) + "</body></html>\n")


def render(export: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(export, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "md":
        return to_markdown(export)
    if fmt == "html":
        return to_html(export)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


__all__ = ["EXPORT_VERSION", "FORMATS", "collect", "render", "restore", "to_html", "to_markdown"]
