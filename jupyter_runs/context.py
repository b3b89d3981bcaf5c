"""Notebook objects -> compact, model-readable descriptions (``--context``, ``describe_variable``).

A model cannot see the kernel, so the user attaches what it should know: a DataFrame as its shape,
dtypes, a few head/tail rows and a numeric summary (never the whole frame: 1,000 rows cost more
than the question is worth), an array as shape, dtype and statistics, a collection as its length
and a sample, and for anything else a clipped ``repr``. The special names cover the notebook's own
state: ``error`` (the last exception with its traceback: "why did this fail?"), ``In[n]``,
``Out[n]`` and ``_``.

Each attachment is one delimited text block (``<context name=... kind=...>`` ... ``</context>``)
added as its own text part of the user message. Storing it in the thread (not only sending it)
means the served API, ``%runs show`` and later runs see exactly what the model saw, and the engine
can find the blocks again to clip them to their share of a request budget.

The same :func:`describe` answers the ``describe_variable`` notebook tool, and the tables and
arrays come from the tool-output encoder (``tools.encode``), so a DataFrame reads the same everywhere.
Nothing here imports pandas, numpy or matplotlib: values are recognised by their type's module.
"""

from __future__ import annotations

import inspect
import re
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .tools.encode import _is_type, _module, cap, jsonable, markdown_table

#: Cap, in UTF-8 bytes, on one attachment's text (the engine may clip further to fit a budget).
CONTEXT_LIMIT = 8192
SAMPLE_ITEMS = 10
HEAD_TAIL_ROWS = 5

OPEN = "<context "
CLOSE = "</context>"
_SPECIAL = re.compile(r"^(In|Out)\[(-?\d+)\]$")


class ContextError(ValueError):
    """A name that cannot be attached (missing, private, an expression); the message says why."""


@dataclass(frozen=True)
class Attachment:
    """One described object, exactly as the model receives it."""

    name: str
    kind: str  # e.g. "DataFrame 1,000×12"
    text: str  # the whole delimited block

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))

    def label(self) -> str:
        """``df · DataFrame 1,000×12 · 3.1 KB``: what a chip and the saved output show."""
        return f"{self.name} · {self.kind} · {human_bytes(self.size)}"

    def to_dict(self) -> dict[str, Any]:
        """The widget's chip data (JSON)."""
        return {"name": self.name, "kind": self.kind, "bytes": self.size, "label": self.label(),
                "text": self.text}

    def to_part(self) -> dict[str, Any]:
        """A ``text`` content part of a create-message request."""
        return {"type": "text", "text": self.text}


def human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} KB"
    return f"{n / 1_000_000:.1f} MB"


def block(name: str, kind: str, body: str, limit: int | None = CONTEXT_LIMIT) -> str:
    """The delimited text of one attachment, its body clipped so the whole stays under ``limit``."""
    head = f'{OPEN}name="{_attr(name)}" kind="{_attr(kind)}">\n'
    tail = f"\n{CLOSE}"
    if limit is not None:
        room = max(64, limit - len((head + tail).encode("utf-8")))
        body = cap(body, room)
    return head + body + tail


def is_block(text: str) -> bool:
    return text.startswith(OPEN) and text.rstrip().endswith(CLOSE)


def clip_block(text: str, limit: int) -> str:
    """A stored block clipped to ``limit`` bytes, keeping its header and closing tag."""
    if len(text.encode("utf-8")) <= limit:
        return text
    head, _, rest = text.partition("\n")
    body = rest.rstrip()[: -len(CLOSE)].rstrip("\n")
    room = max(64, limit - len(head.encode("utf-8")) - len(CLOSE) - 2)
    return f"{head}\n{cap(body, room)}\n{CLOSE}"


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\n", " ")


# --------------------------------------------------------------------------- describing values


def describe(value: Any, limit: int | None = CONTEXT_LIMIT) -> tuple[str, str]:
    """``(kind, body)`` of any object; ``body`` is capped at ``limit`` bytes."""
    kind, body = _describe(value)
    return kind, cap(body, limit)


def _describe(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        return f"str {len(value):,} chars", value
    if value is None or isinstance(value, (bool, int, float, complex)):
        return type(value).__name__, repr(value)
    if _is_type(value, "pandas", "DataFrame"):
        return _pandas_frame(value)
    if _is_type(value, "pandas", "Series"):
        name = value.name if value.name is not None else "value"
        kind, body = _pandas_frame(value.to_frame(name=name))
        return f"Series {len(value):,} ({value.dtype})", body
    if _is_type(value, "polars", "DataFrame"):
        return _polars_frame(value)
    if _is_type(value, "numpy", "ndarray"):
        return _array(value)
    figure = _figure(value)
    if figure is not None:
        return _figure_text(figure)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return _collection(value)
    if isinstance(value, types.ModuleType):
        return "module", f"module {value.__name__}"
    if inspect.isfunction(value) or inspect.ismethod(value):
        return "function", _function(value)
    return type(value).__name__, _repr(value)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ still gets a description
        return f"<{type(value).__name__} object; repr() failed: {type(exc).__name__}: {exc}>"


def _pandas_frame(frame: Any) -> tuple[str, str]:
    rows, cols = frame.shape
    lines = [f"shape: {rows:,} rows x {cols} columns", "", "columns (dtype):"]
    lines += [f"- {c}: {t}" for c, t in list(frame.dtypes.items())[:60]]
    if cols > 60:
        lines.append(f"- ... {cols - 60} more")
    sample = "head and tail rows" if rows > 2 * HEAD_TAIL_ROWS else "rows"
    lines += ["", f"{sample}:", markdown_table(frame, max_rows=2 * HEAD_TAIL_ROWS, digits=6)]
    numeric = frame.select_dtypes("number")
    if numeric.shape[1] and rows:
        summary = numeric.describe().T[["mean", "std", "min", "max"]]
        summary.index.name = "column"
        lines += ["", "numeric summary:", markdown_table(summary, digits=4)]
    return f"DataFrame {rows:,}×{cols}", "\n".join(lines)


def _polars_frame(frame: Any) -> tuple[str, str]:
    rows, cols = frame.shape
    lines = [f"shape: {rows:,} rows x {cols} columns", "", "columns (dtype):"]
    lines += [f"- {c}: {t}" for c, t in list(frame.schema.items())[:60]]
    n = HEAD_TAIL_ROWS
    picked = list(range(rows)) if rows <= 2 * n else [*range(n), *range(rows - n, rows)]
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    table = [header, "|" + "---|" * cols]
    for i, pos in enumerate(picked):
        if i == n and rows > 2 * n:
            table.append("| " + " | ".join(["…"] * cols) + " |")
        table.append("| " + " | ".join(str(v) for v in frame.row(pos)) + " |")
    lines += ["", "head and tail rows:", "\n".join(table)]
    try:
        lines += ["", "summary:", str(frame.describe())]
    except Exception:  # describe() refuses some dtypes; the rows above still stand
        pass
    return f"DataFrame {rows:,}×{cols}", "\n".join(lines)


def _array(array: Any) -> tuple[str, str]:
    shape = "×".join(f"{d:,}" for d in array.shape) or "scalar"
    lines = [f"shape: {tuple(array.shape)}, dtype: {array.dtype}"]
    flat = array.ravel()
    if array.dtype.kind in "iufb" and array.size:
        import numpy as np  # the value is a numpy array: numpy is already imported

        data = flat.astype("float64")
        finite = data[np.isfinite(data)]
        if finite.size:
            lines.append(
                f"min {finite.min():.6g}, max {finite.max():.6g}, mean {finite.mean():.6g}, "
                f"std {finite.std():.6g}"
            )
        if finite.size < data.size:
            lines.append(f"non-finite values: {data.size - finite.size:,}")
    first = ", ".join(repr(x) for x in flat[:SAMPLE_ITEMS].tolist())
    lines.append(f"first items: [{first}{', ...' if array.size > SAMPLE_ITEMS else ''}]")
    return f"ndarray {shape} {array.dtype}", "\n".join(lines)


def _collection(value: Any) -> tuple[str, str]:
    kind = f"{type(value).__name__}[{len(value):,}]"
    if isinstance(value, dict):
        items: Any = dict(list(value.items())[:SAMPLE_ITEMS])
    elif isinstance(value, (set, frozenset)):
        items = sorted(value, key=repr)[:SAMPLE_ITEMS]
    else:
        items = list(value[:SAMPLE_ITEMS])
    try:
        import json

        sample = json.dumps(jsonable(items), ensure_ascii=False, default=None)
    except (TypeError, ValueError):
        sample = _repr(items)
    more = f" (first {SAMPLE_ITEMS} of {len(value):,})" if len(value) > SAMPLE_ITEMS else ""
    return kind, f"length {len(value):,}; sample{more}: {sample}"


def _function(fn: Any) -> str:
    try:
        sig = str(inspect.signature(fn))
    except (TypeError, ValueError):
        sig = "(...)"
    doc = inspect.getdoc(fn) or ""
    return f"def {getattr(fn, '__name__', '?')}{sig}" + (f"\n{doc}" if doc else "")


def _figure(value: Any) -> Any:
    if _module(value) != "matplotlib":
        return None
    if hasattr(value, "savefig"):
        return value
    fig = getattr(value, "figure", None)
    return fig if hasattr(fig, "savefig") else None


def _figure_text(fig: Any) -> tuple[str, str]:
    width, height = (int(round(x)) for x in fig.get_size_inches() * fig.dpi)
    titles = [ax.get_title() for ax in fig.get_axes() if ax.get_title()]
    body = f"matplotlib figure {width}x{height} px, {len(fig.get_axes())} axes"
    if titles:
        body += "; titles: " + ", ".join(repr(t) for t in titles)
    return f"Figure {width}×{height}", body


# --------------------------------------------------------------------------- notebook state


def last_exception() -> BaseException | None:
    """The exception IPython last showed (it keeps it in ``sys.last_value``)."""
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return exc if isinstance(exc, BaseException) else None


def format_error(exc: BaseException) -> str:
    """The exception with its traceback, minus IPython's own frames above the cell."""
    tb = exc.__traceback__
    while tb is not None and "IPython" in tb.tb_frame.f_code.co_filename.replace("\\", "/").split("/"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def resolve(name: str, ns: Mapping[str, Any], limit: int | None = CONTEXT_LIMIT) -> Attachment:
    """An attachment for ``name``: a notebook variable, or one of the special names.

    A variable the user defined wins over a special name (they typed its name); ``error`` means
    the last exception only when no variable of that name exists.
    """
    name = name.strip()
    special = _SPECIAL.match(name)
    if special:
        which, n = special.group(1), int(special.group(2))
        return _history(which, n, ns, limit)
    if not name.isidentifier():
        raise ContextError(f"{name!r} is not a variable name (expressions are not evaluated)")
    if name.startswith("__"):
        raise ContextError(f"{name!r} is a dunder name; attach a variable")
    if name in ns:
        kind, body = describe(ns[name], limit)
        return Attachment(name, kind, block(name, kind, body, limit))
    if name == "error":
        exc = last_exception()
        if exc is None:
            raise ContextError("error: no exception has been raised in this kernel yet")
        kind = type(exc).__name__
        return Attachment(name, kind, block(name, kind, format_error(exc), limit))
    raise ContextError(f"no variable named {name!r} in the notebook")


def _history(which: str, n: int, ns: Mapping[str, Any], limit: int | None) -> Attachment:
    name = f"{which}[{n}]"
    if which == "In":
        cells = ns.get("In") or ns.get("_ih") or []
        try:
            source = cells[n]
        except (IndexError, TypeError):
            raise ContextError(f"{name}: no such cell in this kernel's history") from None
        kind = f"cell source, {len(source.splitlines())} lines"
        return Attachment(name, kind, block(name, kind, source, limit))
    outputs = ns.get("Out") or ns.get("_oh") or {}
    if n < 0:
        n = len(ns.get("In") or ()) + n
    if n not in outputs:
        raise ContextError(f"{name}: that cell has no output")
    kind, body = describe(outputs[n], limit)
    return Attachment(name, kind, block(name, kind, body, limit))


def attach(names: str | list[str], ns: Mapping[str, Any], limit: int | None = CONTEXT_LIMIT) -> list[Attachment]:
    """Attachments for comma-separated names (``"df, error, In[3]"``), in the order given."""
    if isinstance(names, str):
        names = [n for n in (p.strip() for p in names.split(",")) if n]
    seen: dict[str, Attachment] = {}
    for name in names:
        if name not in seen:
            seen[name] = resolve(name, ns, limit)
    return list(seen.values())


def from_values(values: Mapping[str, Any], limit: int | None = CONTEXT_LIMIT) -> list[Attachment]:
    """Attachments for ``{name: value}`` (the Python API's ``context=``)."""
    out = []
    for name, value in values.items():
        kind, body = describe(value, limit)
        out.append(Attachment(str(name), kind, block(str(name), kind, body, limit)))
    return out


#: Message metadata key naming the attachments (so a served thread says what it carries).
METADATA_KEY = "jupyter_runs_context"


def as_attachments(context: Any, ns: Mapping[str, Any] | None = None) -> list[Attachment]:
    """Attachments from what the Python API accepts as ``context=``."""
    if isinstance(context, Mapping):
        return from_values(context)
    items = [context] if isinstance(context, (str, Attachment)) else list(context)
    if all(isinstance(a, Attachment) for a in items):
        return items
    if ns is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:  # pragma: no cover - IPython is a dependency
            shell = None
        if shell is None:
            raise ContextError("context names need IPython's namespace; outside IPython pass "
                               "context={'name': value}")
        ns = shell.user_ns
    names = [n for item in items for n in str(item).split(",") if n.strip()]
    return attach(names, ns)


def with_context(content: Any, params: dict[str, Any], context: Any) -> tuple[Any, dict[str, Any]]:
    """``(content, params)`` of a create-message call with ``context`` attached."""
    attachments = as_attachments(context)
    if not attachments:
        return content, params
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    parts += [a.to_part() for a in attachments]
    metadata = dict(params.get("metadata") or {})
    metadata[METADATA_KEY] = ",".join(a.name for a in attachments)[:512]
    return parts, {**params, "metadata": metadata}


def parse_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chip data of the attachments in a stored message (its context text parts)."""
    out = []
    for part in message.get("content") or ():
        text = (part.get("text") or {}).get("value") if part.get("type") == "text" else None
        if not isinstance(text, str) or not is_block(text):
            continue
        header = text.partition("\n")[0]
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        name = _unattr(fields.get("name", "?"))
        kind = _unattr(fields.get("kind", ""))
        out.append(Attachment(name, kind, text).to_dict())
    return out


def _unattr(text: str) -> str:
    return text.replace("&lt;", "<").replace("&quot;", '"').replace("&amp;", "&")


def chips_markdown(chips: list[Mapping[str, Any]]) -> str:
    """The saved output's line listing the attachments."""
    return "**Context:** " + ", ".join(
        f"`{str(c.get('label') or c.get('name')).replace('`', chr(39))}`" for c in chips)


__all__ = ["Attachment", "ContextError", "as_attachments", "attach", "describe", "from_values",
           "parse_blocks", "resolve", "with_context"]
