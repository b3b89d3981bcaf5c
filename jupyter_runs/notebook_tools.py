"""Read-only tools that let the assistant look at the notebook (``--notebook-tools``).

``list_variables``, ``describe_variable``, ``read_cells`` and ``last_error`` are ordinary function
tools: they are declared on the run, shown in the timeline and called through the ToolRunner like
the user's own, and exist only when the user asked for them. They never execute code or evaluate
expressions: a name is looked up in the namespace as a dictionary key, nothing more. Private and
dunder names, modules, IPython's own names and jupyter_runs' objects are never listed or
described, because the model chose the name, not the user.
"""

from __future__ import annotations

import keyword
import re
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from .context import describe, format_error, last_exception
from .tools.encode import cap

#: Caps, in bytes: one description, one cell's source or output.
DESCRIBE_LIMIT = 8192
CELL_LIMIT = 2000
MAX_CELLS = 20
MAX_VARIABLES = 200

# Cell sources can hold keys typed in by hand; they are masked before the model sees a cell.
_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_-]{12,}|(?:api[_-]?key|token|secret|password)\s*=\s*['\"][^'\"]+['\"])",
                     re.IGNORECASE)


class NotebookToolError(ValueError):
    """A refused request (private name, expression, unknown variable); the message is the output."""


def _hidden(shell: Any) -> set[str]:
    return set(getattr(shell, "user_ns_hidden", {}) or ()) | {"In", "Out", "get_ipython", "exit", "quit"}


def _ours(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module == "jupyter_runs" or module.startswith("jupyter_runs.")


def _visible(name: str, value: Any, hidden: set[str]) -> bool:
    return not (name.startswith("_") or name in hidden or isinstance(value, types.ModuleType)
                or _ours(value) or (isinstance(value, type) and _ours(value)))


def _kind(value: Any) -> str:
    """A cheap one-line type and size (no statistics: listing must stay fast)."""
    module = type(value).__module__.split(".")[0]
    shape = getattr(value, "shape", None)
    if module in ("pandas", "numpy", "polars") and isinstance(shape, tuple):
        return f"{type(value).__name__} {'×'.join(f'{d:,}' for d in shape)}"
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        return f"{type(value).__name__}[{len(value):,}]"
    if callable(value) and not isinstance(value, type):
        return "function"
    return type(value).__name__


def _size(value: Any) -> int:
    """Bytes held (pandas/numpy report their buffers; otherwise the object's own size)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    usage = getattr(value, "memory_usage", None)
    if callable(usage) and type(value).__module__.startswith("pandas"):
        try:
            return int(usage(index=True).sum()) if hasattr(value, "columns") else int(usage(index=True))
        except Exception:
            pass
    try:
        return sys.getsizeof(value)
    except Exception:
        return 0


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise NotebookToolError("refused: give the name of one variable, e.g. describe_variable('df')")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise NotebookToolError(
            f"refused: {name!r} is not a variable name; expressions are never evaluated. "
            "Call list_variables() for the names you can describe."
        )
    if name.startswith("_"):
        raise NotebookToolError(f"refused: {name!r} is a private name; private and dunder names are never read")
    return name


def make_tools(shell: Any) -> list[Callable[..., Any]]:
    """The four notebook tools, bound to ``shell``'s namespace and history."""
    ns: Mapping[str, Any] = shell.user_ns

    def list_variables() -> list[dict[str, Any]]:
        """List the notebook's variables: name, type and size in bytes (no private names, modules
        or imported helpers). Use describe_variable(name) to look at one."""
        hidden = _hidden(shell)
        out = []
        for name, value in list(ns.items()):
            if _visible(name, value, hidden):
                out.append({"name": name, "type": _kind(value), "bytes": _size(value)})
                if len(out) >= MAX_VARIABLES:
                    break
        return out

    def describe_variable(name: str) -> str:
        """Describe one notebook variable: for a DataFrame its shape, dtypes, head/tail rows and a
        numeric summary; for an array its shape, dtype and statistics; else a sample or repr.

        Args:
            name: The variable's name exactly (no expressions, no attributes, no indexing).
        """
        name = _check_name(name)
        hidden = _hidden(shell)
        if name not in ns:
            raise NotebookToolError(f"no variable named {name!r}; call list_variables() to see the names")
        value = ns[name]
        if not _visible(name, value, hidden):
            raise NotebookToolError(f"refused: {name!r} is not a user variable (a module or a tool's own object)")
        kind, body = describe(value, DESCRIBE_LIMIT)
        return f"{name}: {kind}\n{body}"

    def read_cells(last: int = 5) -> list[dict[str, Any]]:
        """Read the sources of the last executed cells, with each cell's result (Out) when it had
        one. Printed output is not recorded by the kernel and is not included.

        Args:
            last: How many of the most recent cells (1-20).
        """
        if not isinstance(last, int) or isinstance(last, bool) or last < 1:
            raise NotebookToolError("refused: last must be a positive integer")
        last = min(last, MAX_CELLS)
        sources = list(ns.get("In") or ())
        outputs = ns.get("Out") or {}
        picked: list[dict[str, Any]] = []
        for n in range(len(sources) - 1, 0, -1):
            source = sources[n]
            if "run_cell_magic('run_assistant'" in source or "run_line_magic('run_assistant'" in source:
                continue  # the assistant's own cells: the thread holds those already
            cell: dict[str, Any] = {"cell": n, "source": cap(_SECRET.sub("[masked]", source), CELL_LIMIT)}
            if n in outputs:
                cell["output"] = describe(outputs[n], CELL_LIMIT)[1]
            picked.append(cell)
            if len(picked) >= last:
                break
        return picked[::-1]

    def last_error() -> str:
        """The last exception raised in the notebook, with its traceback."""
        exc = last_exception()
        if exc is None:
            return "No exception has been raised in this kernel yet."
        return cap(format_error(exc), DESCRIBE_LIMIT)

    return [list_variables, describe_variable, read_cells, last_error]


NAMES = ("list_variables", "describe_variable", "read_cells", "last_error")
