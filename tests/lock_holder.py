"""A second process that holds a SQLite store's write lock: ``BEGIN IMMEDIATE`` and sleep.

Used by tests and ``bench/store_lock.py``. It prints ``locked`` once it holds the lock and keeps it
until it is killed (the OS releases the lock with the process) or ``seconds`` pass.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_CODE = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout = 10000")
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


class LockHolder:
    def __init__(self, path: str | Path, seconds: float = 120.0) -> None:
        self.path, self.seconds = str(path), seconds
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> LockHolder:
        self.proc = subprocess.Popen([sys.executable, "-c", _CODE, self.path, str(self.seconds)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self.proc.kill()
            raise RuntimeError(f"the lock holder did not take the lock: {line!r}")
        return self

    def release(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> LockHolder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy (a generous deadline only to avoid hangs)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
