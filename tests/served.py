"""The embedded engine served over real loopback HTTP, two ways.

:class:`ServedEngine` runs the ASGI app under uvicorn on a thread of the test process (fast, and
the backend is reachable for assertions). :class:`ServerProcess` runs ``python -m jupyter_runs
serve`` as a subprocess, reading the URL it prints: the CLI path, and the only way to SIGKILL a
server mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from jupyter_runs.backends.local.backend import LocalBackend
from jupyter_runs.server import create_app

REPO = Path(__file__).resolve().parents[1]


class ServedEngine:
    """``create_app(LocalBackend(store))`` on 127.0.0.1, port 0, in a uvicorn thread."""

    def __init__(self, store: Any = ":memory:", *, api_key: str | None = None,
                 cors_origins: tuple[str, ...] = (), model_config: dict[str, Any] | None = None
                 ) -> None:
        self.backend = LocalBackend(store=store, model_config=model_config)
        self.api_key = api_key
        self.app = create_app(self.backend, api_key=api_key, cors_origins=cors_origins)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="served-engine", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        """The API root (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def start(self) -> ServedEngine:
        self._thread.start()
        for _ in range(1000):
            if self.server.started or not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)

    def __enter__(self) -> ServedEngine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ServerProcess:
    """``python -m jupyter_runs serve --port 0 ...`` as a subprocess; ``url`` from its output.
    ``scripted_dir``: where it reads ``scripted:`` models (default the temp dir, where pytest's
    ``tmp_path`` and the ``script`` fixture write them)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 scripted_dir: str | None = None) -> None:
        self.args = ["serve", "--port", "0", "--log-level", "warning",
                     "--scripted-dir", scripted_dir or tempfile.gettempdir(), *args]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner = ""
        self.stdout = ""

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_runs", *self.args], cwd=REPO, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline().strip()
        if "http://" not in self.banner:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"jupyter-runs serve did not start: {self.banner!r} {err[-2000:]}")
        self.url = self.banner.split(" at ", 1)[1].split()[0]
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        """SIGTERM and wait; returns what the server wrote to stderr (``stdout`` keeps the rest
        of its output: uvicorn's access log goes there)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
        self.stdout = out or ""
        return err or ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
