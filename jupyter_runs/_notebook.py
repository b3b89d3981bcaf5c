"""Which notebook a kernel serves: the key of the default, per-notebook thread.

Front ends tell the kernel differently, and one of them not at all:

- VS Code sets ``__vsc_ipynb_file__`` in the user namespace to the notebook's full path.
- Jupyter Server starts each kernel with ``JPY_SESSION_NAME`` = the notebook's folder joined with
  the session *name* the front end sent, and ipykernel copies it to ``__session__``. JupyterLab
  and Notebook 7 send the file name, so the value is the notebook's path. nbclassic sends an empty
  name, so the value is the *folder* (``/work/dir/``): every notebook there would share a thread.
- Consoles, nbclient and papermill send nothing.

Where the path is missing or names a folder, the kernel itself is the identity: its id from the
connection file (``kernel-<id>.json``), which a kernel restart keeps (the server reuses the id and
the file) and no other notebook shares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_KERNEL_ID = re.compile(r"kernel-([0-9a-fA-F-]{8,})\.json$")


def _is_folder(path: str) -> bool:
    return path.endswith(("/", "\\")) or os.path.isdir(path)


def notebook_identity(
    user_ns: Mapping[str, Any], environ: Mapping[str, str] | None = None, connection_file: str | None = None
) -> str | None:
    """``notebook:PATH`` when the front end named the notebook file, ``kernel:ID`` when only the
    kernel is known, ``None`` when neither is (a plain IPython shell)."""
    environ = os.environ if environ is None else environ
    vsc = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vsc, str) and vsc:
        return f"notebook:{vsc}"
    for session in (user_ns.get("__session__"), environ.get("JPY_SESSION_NAME")):
        if isinstance(session, str) and session and not _is_folder(session):
            return f"notebook:{session}"
    if connection_file:
        found = _KERNEL_ID.search(os.path.basename(connection_file))
        if found:
            return f"kernel:{found.group(1)}"
    return None


def connection_file() -> str | None:
    """The running kernel's connection file, if this is an ipykernel kernel."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    return getattr(IPKernelApp.instance(), "connection_file", None) or None


__all__ = ["connection_file", "notebook_identity"]
