"""Importing the package and loading the extension cost little: heavy modules load on first use."""

from __future__ import annotations

import subprocess
import sys


def test_import_and_load_ext_do_not_pull_in_the_client_engine_or_widget() -> None:
    code = (
        "import sys, jupyter_runs, jupyter_runs.magic\n"
        "heavy = [m for m in ('httpx', 'anywidget', 'ipywidgets', 'uvicorn', "
        "'jupyter_runs.client', 'jupyter_runs.widget', 'jupyter_runs.backends.local.engine') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve() -> None:
    import jupyter_runs as jr

    for name in jr.__all__:
        assert getattr(jr, name) is not None
