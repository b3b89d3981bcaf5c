"""Route a tool call's prints and displays into its own record.

Several async tools may run at once on one loop, so swapping ``sys.stdout`` per call (as
``contextlib.redirect_stdout`` does) would mix their output. Instead, while any call is running,
``sys.stdout``/``sys.stderr`` are proxies that look up the current call's sink in a contextvar (each
asyncio task and each ``to_thread`` worker has its own context) and fall through to the real stream
for everyone else. In IPython, the shell's display publisher is routed the same way, so a
``display()`` inside a tool lands on the tool's step card instead of in whichever cell runs next.
"""

from __future__ import annotations

import contextvars
import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sink:
    """What one tool call printed and displayed."""

    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)
    displays: list[dict[str, Any]] = field(default_factory=list)


_current: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("jupyter_runs_tool_sink", default=None)
_lock = threading.Lock()
_users = 0
_saved: dict[str, Any] = {}


class _Router:
    """A text stream that writes to the running tool call's sink, else to the real stream.

    Not an ``io.TextIOBase``: its stub ``encoding``/``fileno`` would hide the real stream's, which
    code like faulthandler and click asks for; everything not routed is delegated instead.
    """

    def __init__(self, name: str, real: Any) -> None:
        self._name, self._real = name, real

    def _target(self) -> Any:
        sink = _current.get()
        return getattr(sink, self._name) if sink is not None else self._real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        target = self._target()
        if hasattr(target, "flush"):
            target.flush()

    def writable(self) -> bool:
        return True

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        return _current.get() is None and bool(getattr(self._real, "isatty", lambda: False)())

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ... of the real stream
        return getattr(self._real, name)


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        from IPython.core.interactiveshell import InteractiveShell

        return InteractiveShell.instance() if InteractiveShell.initialized() else None
    except Exception:
        return None


def _install() -> None:
    _saved["stdout"], _saved["stderr"] = sys.stdout, sys.stderr
    sys.stdout = _Router("stdout", sys.stdout)
    sys.stderr = _Router("stderr", sys.stderr)
    shell = _shell()
    pub = getattr(shell, "display_pub", None)
    if pub is not None:
        real_publish, real_clear = pub.publish, pub.clear_output

        def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            sink = _current.get()
            if sink is None:
                return real_publish(data, metadata, *args, **kwargs)
            sink.displays.append(dict(data))
            return None

        def clear_output(*args: Any, **kwargs: Any) -> Any:
            if _current.get() is None:
                return real_clear(*args, **kwargs)
            return None

        # Instance attributes shadow the methods; the publisher object itself stays, so other
        # code holding it (ipykernel's, IPython.utils.capture's) keeps working.
        pub.publish, pub.clear_output = publish, clear_output
        _saved["pub"] = pub


def _uninstall() -> None:
    if isinstance(sys.stdout, _Router):
        sys.stdout = _saved["stdout"]
    if isinstance(sys.stderr, _Router):
        sys.stderr = _saved["stderr"]
    pub = _saved.pop("pub", None)
    if pub is not None:
        for name in ("publish", "clear_output"):
            pub.__dict__.pop(name, None)


@contextmanager
def routing() -> Iterator[None]:
    """Keep the proxies installed while any tool call may be running (reference counted)."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _uninstall()


@contextmanager
def capture(sink: Sink) -> Iterator[Sink]:
    """Send this context's prints and displays to ``sink`` (use inside ``routing()``), and the
    matplotlib figures it drew but neither showed nor returned."""
    before = _open_figures()
    token = _current.set(sink)
    try:
        yield sink
    finally:
        _current.reset(token)
        _take_new_figures(sink, before)


def _open_figures() -> set[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")  # never imported here: no plot, no matplotlib
    return set(pyplot.get_fignums()) if pyplot is not None else set()


def _take_new_figures(sink: Sink, before: set[int]) -> None:
    """A figure a tool drew (``plt.plot(...)``) and left open would be shown by the inline
    backend under whichever cell finishes next; it belongs on the tool's step instead."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    from .encode import _show_figure

    for number in sorted(set(pyplot.get_fignums()) - before):
        try:
            _text, bundles = _show_figure(pyplot.figure(number))  # renders, then closes it
        except Exception as exc:  # a broken figure must not lose the call's outputs
            sink.stderr.write(f"[figure {number} could not be rendered: {type(exc).__name__}: {exc}]\n")
            pyplot.close(number)
            continue
        sink.displays.extend(bundles)
