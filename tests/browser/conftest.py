"""Browser fixtures: a real JupyterLab server and Debian's Chromium driven by Playwright.

JupyterLab runs as a subprocess on a free 127.0.0.1 port with no token, its root a temporary
folder the tests write notebooks into, and its settings/workspaces in temporary folders too, so a
developer's own Lab state never leaks in. Kernels inherit PYTHONPATH pointing at this checkout.
Chromium is the system one (never `playwright install`: nothing can be downloaded here).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("JUPYTER_RUNS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
#: Screenshots written this session, listed in pytest's terminal summary (output is captured).
SAVED: list[Path] = []


def _need(what: str, how: str) -> None:
    message = f"{what} is missing: {how}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: ``url``, ``root`` (its notebook folder) and ``write_notebook``."""

    #: The server command after ``python -m jupyter`` (Notebook 7 subclasses this).
    app = "lab"
    app_flags = ("--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
                 "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")

    def __init__(self, root: Path, settings: Path) -> None:
        self.root = root
        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root.parent / "lab.log"

    def start(self) -> Lab:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["JUPYTERLAB_SETTINGS_DIR"] = str(self.settings / "settings")
        env["JUPYTERLAB_WORKSPACES_DIR"] = str(self.settings / "workspaces")
        env["JUPYTER_RUNTIME_DIR"] = str(self.settings / "runtime")
        env.pop("JUPYTER_RUNS_MODEL", None)
        env.pop("OPENAI_API_KEY", None)
        # Kernels' embedded engine keeps threads here, not in the developer's Jupyter data dir.
        env["JUPYTER_RUNS_STORE"] = str(self.settings / "threads.sqlite3")
        # No news / update toasts over the notebook (they would cover screenshots).
        notes = self.settings / "settings" / "@jupyterlab" / "apputils-extension"
        notes.mkdir(parents=True, exist_ok=True)
        (notes / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        cmd = [
            sys.executable, "-m", "jupyter", self.app, "--no-browser", "--allow-root",
            f"--port={self.port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}", *self.app_flags,
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def write_notebook(self, name: str, cells: list[str]) -> str:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("jupyter") is None and not _has_module("jupyterlab"):
        _need("JupyterLab", "pip install jupyterlab")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    server = Lab(root, base / "state").start()
    try:
        yield server
    finally:
        server.stop()


class Notebook7(Lab):
    """A running Notebook 7 (``jupyter notebook``), set up like :class:`Lab`; notebooks open at
    ``/notebooks/NAME``."""

    app = "notebook"
    app_flags = ("--JupyterNotebookApp.expose_app_in_browser=True",)


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notebook7]:
    if not _has_module("notebook"):
        _need("Notebook 7", "pip install notebook")
    base = tmp_path_factory.mktemp("nb7")
    root = base / "notebooks"
    root.mkdir()
    server = Notebook7(root, base / "state").start()
    try:
        yield server
    finally:
        server.stop()


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _fresh_bundle() -> None:
    """A stale bundle makes the browser test the old front end: rebuild when js/src is newer."""
    bundle = REPO / "jupyter_runs" / "static" / "widget.js"
    sources = [p for p in (REPO / "js").glob("src/*") if p.is_file()]
    newest = max((p.stat().st_mtime for p in sources), default=0)
    if bundle.exists() and bundle.stat().st_mtime >= newest:
        return
    if shutil.which("npm") is None or not (REPO / "js" / "node_modules").exists():
        _need("an up-to-date widget bundle", "cd js && npm ci && npm run build")
    subprocess.run(["npm", "run", "build"], cwd=REPO / "js", check=True, capture_output=True)


# Module scope, not session: sync Playwright keeps an event loop running on this thread while it
# is open, and pytest-asyncio tests collected after this folder could not start theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _need("Chromium", "apt-get install chromium (Debian's package provides /usr/bin/chromium)")
    if not _has_module("playwright"):
        _need("Playwright", "pip install playwright (its browsers are not needed)")
    _fresh_bundle()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def screenshot() -> Any:
    """``screenshot(page, name)``: save the run widget (with a margin) as test-artifacts/NAME."""

    def shoot(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        run = page.locator(".jr-run").first
        height = int(run.bounding_box()["height"])
        page.set_viewport_size({"width": 1200, "height": max(900, height + 400)})
        run.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(200)
        box = run.bounding_box()
        pad = 16
        page.screenshot(path=str(path), clip={"x": max(box["x"] - pad, 0), "y": max(box["y"] - pad, 0),
                                              "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad})
        SAVED.append(path)
        return path

    return shoot


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in SAVED:
        terminalreporter.write_line(f"screenshot saved: {path}")
