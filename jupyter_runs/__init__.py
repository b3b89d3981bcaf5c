"""jupyter_runs: assistant runs in Jupyter.

Public names only. Importing the package is cheap: the client, the engine and the widget load on
first use, so ``%load_ext jupyter_runs`` costs little.

Layout: ``magic`` (the cell magic), ``widget`` (the live view), ``static_view`` (a finished run,
saved without a kernel), ``frontend`` (is a widget front end attached), ``runs`` (``Run``/``RunStream``),
``client``, ``wire`` (objects), ``events`` (the event fold); ``tools/`` (callables as function tools:
``schema``, ``validate``, ``approval``, ``runner``, ``cut``, ``capture``, ``encode``);
``backends/http`` (a remote server) and ``backends/local`` (the embedded engine), whose
``models/`` package holds ``base`` (model types), one module per adapter and the id registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Client": "client",
    "AsyncClient": "client",
    "Run": "runs",
    "RunStream": "runs",
    "RunWidget": "widget",
    "tool": "tools.runner",
    "ToolRunner": "tools.runner",
    "ToolCallRecord": "tools.runner",
    "Event": "wire",
    "wait_all": "magic",
    "JupyterRunsError": "errors",
    "APIError": "errors",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "InternalServerError": "errors",
    "PermissionDeniedError": "errors",
    "RunError": "errors",
    "RunTimeoutError": "errors",
    "StreamError": "errors",
    "ToolError": "errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_runs' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_runs``: register ``%%run_assistant`` and ``%runs``."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magic import unload_ipython_extension as unload

    unload(ipython)
