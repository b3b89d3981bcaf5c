"""Is a front end attached that shows widgets live? It decides whether ``%%run_assistant`` may
return while its run streams.

Why it matters: a background run keeps going after its cell returns, which is what an interactive
user wants (the kernel stays free; Stop and Approve work). A headless executor (nbconvert
``--execute``, papermill, nbclient, ``jupyter execute``) runs the next cell as soon as the kernel
is idle, records only the messages of the cell it is executing and shuts the kernel down after
the last one, so a background run would be saved as "Queued". There, each run must end before
its cell returns.

The rule, from two signals the front ends give (checked against JupyterLab 4, Notebook 7, VS Code
and nbclient 0.10):

1. ipywidgets' control comm (``jupyter.widget.control``) is open: the widget manager of JupyterLab
   and Notebook 7 opens it when it connects to a kernel, to restore widgets. nbclient never opens a
   comm. Open means attached.
2. Otherwise, the execute request's ``allow_stdin``: JupyterLab, Notebook 7, VS Code and consoles
   send ``true`` (they can answer ``input()``); nbclient, and so nbconvert and papermill, always
   sends ``false``. The control comm alone is not enough: a front end opens it when it connects,
   usually before any cell imported ipywidgets, and the kernel then refuses it (no target yet),
   so in a fresh JupyterLab kernel it is often missing.

3. Voila renders widgets live but executes cells like nbclient (``allow_stdin`` false, no control
   comm first): its kernels carry ``VOILA_SERVER_URL`` / ``VOILA_BASE_URL`` in their environment,
   and the page stays connected while runs stream, so a Voila kernel counts as attached.

``--wait`` / ``--background`` (and ``%config RunAssistantMagics.wait``) override the rule.
"""

from __future__ import annotations

import os
from typing import Any


def control_comm_open() -> bool:
    """Whether a widget manager opened ipywidgets' control comm in this kernel."""
    try:
        from ipywidgets import Widget
    except ImportError:
        return False
    return getattr(Widget, "_control_comm", None) is not None


def request_allows_stdin(shell: Any) -> bool | None:
    """``allow_stdin`` of the execute request being run; ``None`` outside an ipykernel."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # older ipykernel: no channel argument
        parent = getattr(shell, "parent_header", None)
    content = (parent or {}).get("content") if isinstance(parent, dict) else None
    if isinstance(content, dict) and "allow_stdin" in content:
        return bool(content["allow_stdin"])
    allowed = getattr(kernel, "_allow_stdin", None)
    return allowed if isinstance(allowed, bool) else None


def widget_frontend_attached(shell: Any) -> bool:
    """The rule above: whether this cell's run may stream in the background."""
    if control_comm_open() or in_voila():
        return True
    return bool(request_allows_stdin(shell))


def in_voila() -> bool:
    """Whether this kernel was started by Voila (rule 3)."""
    return bool(os.environ.get("VOILA_SERVER_URL") or os.environ.get("VOILA_BASE_URL"))


__all__ = ["control_comm_open", "in_voila", "request_allows_stdin", "widget_frontend_attached"]
