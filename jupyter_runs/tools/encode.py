"""A tool's return value -> the text the model gets, plus what the user is shown.

Models read text, so every value becomes a string: tables as markdown with their shape, arrays as
lists (or a summary), images described in words while the picture itself goes to the user as a
mimebundle. No pandas, numpy, matplotlib or PIL import happens here unless the value is one of
theirs (checked by type name), so encoding a dict never loads matplotlib. Every text is capped with
a visible marker, because an unbounded output costs the model its context and the user money.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import io
import json
import math
import sys
from pathlib import PurePath
from typing import Any

MAX_ROWS = 30
MAX_COLUMNS = 20
MAX_CELL = 60
MAX_ARRAY_ITEMS = 1000


def cap(text: str, limit: int | None) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, with a marker saying how much was cut."""
    data = text.encode("utf-8")
    if limit is None or len(data) <= limit:
        return text
    marker = f"\n[... truncated: {len(data)} bytes, showing the first {{}} ...]"
    keep = max(0, limit - len(marker.format(limit).encode()))
    head = data[:keep].decode("utf-8", errors="ignore")
    return head + marker.format(len(head.encode()))


def _module(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def _is_type(value: Any, module: str, *names: str) -> bool:
    return _module(value) == module and any(c.__name__ in names for c in type(value).__mro__)


def encode(value: Any, limit: int | None) -> tuple[str, list[dict[str, Any]]]:
    """``(text for the model, mimebundles for the user)``; ``text`` is capped at ``limit`` bytes."""
    text, displays = _encode(value)
    return cap(text, limit), displays


def _encode(value: Any) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(value, str):
        return value, []
    figure = _figure(value)
    if figure is not None:
        return _show_figure(figure)
    if _is_type(value, "PIL", "Image"):
        return _show_image(value)
    if _is_type(value, "pandas", "DataFrame"):
        return markdown_table(value), []
    if _is_type(value, "pandas", "Series"):
        return markdown_table(value.to_frame(name=value.name if value.name is not None else "value")), []
    if _is_type(value, "numpy", "ndarray"):
        return _array(value), []
    try:
        return json.dumps(jsonable(value), ensure_ascii=False), []
    except (TypeError, ValueError):
        pass
    for method in ("_repr_markdown_", "_repr_html_"):
        rich = _call_repr(value, method)
        if rich:
            return rich, []
    try:
        return repr(value), []
    except Exception as exc:  # a broken __repr__ must not lose the call's result entirely
        return f"<{type(value).__name__} object; repr() failed: {type(exc).__name__}: {exc}>", []


def _call_repr(value: Any, method: str) -> str | None:
    fn = getattr(value, method, None)
    if not callable(fn) or isinstance(value, type):
        return None
    try:
        out = fn()
    except Exception:
        return None
    if isinstance(out, tuple):  # (data, metadata) form
        out = out[0]
    return out if isinstance(out, str) else None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; TypeError for anything that has no faithful JSON form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite float")
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)):
                raise TypeError(f"dict key {k!r} is not JSON")
            out[str(k) if not isinstance(k, str) else k] = jsonable(v)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if _module(value) == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return jsonable(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON")


# --------------------------------------------------------------------------- tables and arrays


def _cell(value: Any, digits: int | None = None) -> str:
    if digits is not None and isinstance(value, float):
        value = f"{value:.{digits}g}"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def markdown_table(frame: Any, max_rows: int = MAX_ROWS, digits: int | None = None) -> str:
    """A DataFrame as a markdown table of at most ``max_rows`` rows (head and tail) and MAX_COLUMNS
    columns, with its shape, so the model knows how much it is not seeing."""
    rows, cols = frame.shape
    columns = list(frame.columns)
    shown_cols = columns if cols <= MAX_COLUMNS else columns[: MAX_COLUMNS - 1] + columns[-1:]
    if rows <= max_rows:
        row_positions: list[int | None] = list(range(rows))
    else:
        tail = min(5, max_rows // 2)
        row_positions = [*range(max_rows - tail), None, *range(rows - tail, rows)]
    index_name = frame.index.name if frame.index.name is not None else ""
    header = [_cell(index_name)] + [_cell(c) for c in shown_cols]
    if cols > MAX_COLUMNS:
        header.insert(MAX_COLUMNS, "…")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    col_positions = [columns.index(c) for c in shown_cols]
    for pos in row_positions:
        if pos is None:
            lines.append("| " + " | ".join(["…"] * len(header)) + " |")
            continue
        cells = [_cell(frame.index[pos])] + [_cell(frame.iat[pos, c], digits) for c in col_positions]
        if cols > MAX_COLUMNS:
            cells.insert(MAX_COLUMNS, "…")
        lines.append("| " + " | ".join(cells) + " |")
    shown = f" (showing {len(row_positions) - 1} rows" if rows > max_rows else ""
    if cols > MAX_COLUMNS:
        shown += (", " if shown else " (showing ") + f"{MAX_COLUMNS} columns"
    shown += ")" if shown else ""
    return "\n".join(lines) + f"\n\n[{rows} rows x {cols} columns{shown}]"


def _array(array: Any) -> str:
    if array.size <= MAX_ARRAY_ITEMS:
        try:
            return json.dumps(jsonable(array.tolist()))
        except (TypeError, ValueError):
            pass
    flat = array.ravel()
    first = ", ".join(repr(x) for x in flat[:10].tolist())
    summary = f"array(shape={tuple(array.shape)}, dtype={array.dtype}); first items: [{first}, ...]"
    if array.dtype.kind in "iuf" and array.size:
        summary += f"; min {flat.min()!r}, max {flat.max()!r}, mean {float(flat.mean())!r}"
    return summary


# --------------------------------------------------------------------------- pictures


def _figure(value: Any) -> Any:
    if _module(value) != "matplotlib":
        return None
    if hasattr(value, "savefig"):
        return value
    fig = getattr(value, "figure", None)  # an Axes returned by a plotting call
    return fig if hasattr(fig, "savefig") else None


def _png_bundle(png: bytes, text: str) -> dict[str, Any]:
    return {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}


def _show_figure(fig: Any) -> tuple[str, list[dict[str, Any]]]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    width, height = (int(round(x)) for x in fig.get_size_inches() * fig.dpi)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(fig, "number", None) in pyplot.get_fignums():
        # Shown on the tool's card already; left open, the inline backend would show it a
        # second time under whichever cell finishes next.
        pyplot.close(fig)
    text = f"[figure {width}x{height} shown to the user]"
    return text, [_png_bundle(buf.getvalue(), text)]


def _show_image(image: Any) -> tuple[str, list[dict[str, Any]]]:
    buf = io.BytesIO()
    if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):  # CMYK, YCbCr: no PNG form
        image = image.convert("RGBA")
    image.save(buf, format="PNG")
    text = f"[image {image.width}x{image.height} shown to the user]"
    return text, [_png_bundle(buf.getvalue(), text)]
