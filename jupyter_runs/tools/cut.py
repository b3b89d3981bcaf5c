"""Cutting a tool call short: its timeout, the run's Stop, or Kernel › Interrupt.

Why this shape (the design says user code runs on the caller's thread, usually the kernel's main
thread):

- A sync tool called by a *blocking* driver (``run.wait()``, ``until_done``, ``--wait``) runs on the
  caller's thread, as before. On the main thread it is cut by a signal: while the tool runs we own
  ``SIGINT``; a timeout or stop sends ``SIGINT`` to the main thread with a reason set first, and the
  handler raises :class:`ToolCut` inside the tool. A signal interrupts blocking calls
  (``time.sleep``, sockets, ``select``) as Ctrl-C does; a real interrupt still raises
  ``KeyboardInterrupt``. Off the main thread the cut is an asynchronous exception
  (``PyThreadState_SetAsyncExc``), which lands at the tool's next Python bytecode.
- A sync tool called from a *background* run (a task on the kernel's loop) runs in a worker thread
  while the loop awaits it. On the loop's thread it would block the kernel: the Stop click (a comm
  message) could not even be read, nor widget updates sent. The worker gets the same asynchronous
  exception when cut; the run does not wait for it (a tool stuck in C code is abandoned and its
  late result discarded). ``SIGINT`` is ignored by an idle ipykernel, so while such a tool runs we
  install a handler (main thread only) that cuts it: Kernel › Interrupt reaches it.
- ``ToolCut`` derives from ``BaseException`` so a tool's own ``except Exception`` does not swallow
  the cut.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Why a tool was cut: the model and the user read these.
REASONS = {
    "timeout": "timed out",
    "stopped": "was stopped: the user stopped the run",
    "interrupted": "was interrupted by the user (Kernel › Interrupt)",
}


class ToolCut(BaseException):
    """Raised inside a tool to cut it; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str = "stopped") -> None:
        super().__init__(reason)
        self.reason = reason


def raise_in_thread(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode (``None`` clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(0))


class _TimeoutCut(ToolCut):
    def __init__(self) -> None:
        super().__init__("timeout")


class _StopCut(ToolCut):
    def __init__(self) -> None:
        super().__init__("stopped")


class _InterruptCut(ToolCut):
    def __init__(self) -> None:
        super().__init__("interrupted")


_BY_REASON: dict[str, type[ToolCut]] = {"timeout": _TimeoutCut, "stopped": _StopCut,
                                        "interrupted": _InterruptCut}


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_owners: list[Callable[[], Any]] = []
_saved: Any = signal.SIG_IGN


def _restorable(handler: Any) -> Any:
    """A handler ``signal.signal`` accepts back (``None`` means one set outside Python)."""
    return signal.default_int_handler if handler is None else handler


def _dispatch(signum: int, frame: Any) -> None:
    for callback in list(_owners):
        callback()


@contextmanager
def sigint_calls(callback: Callable[[], Any]) -> Iterator[None]:
    """While inside, ``SIGINT`` calls ``callback`` (main thread only; elsewhere a no-op).

    One handler for all holders, installed by the first and restored by the last, so overlapping
    tool calls never leave a stale handler behind (it would swallow Ctrl-C in a plain script)."""
    global _saved
    if not on_main_thread():
        yield
        return
    if not _owners:
        previous = signal.signal(signal.SIGINT, _dispatch)
        if previous is not _dispatch:  # ipykernel may have put ours back after a cell
            _saved = _restorable(previous)
    _owners.append(callback)
    try:
        yield
    finally:
        _owners.remove(callback)
        # ipykernel swaps handlers around each cell it runs: only undo what is still ours.
        if not _owners and signal.getsignal(signal.SIGINT) is _dispatch:
            signal.signal(signal.SIGINT, _saved)


class Cut:
    """One tool call that can be cut from any thread: ``cut(reason)`` once, first reason wins."""

    def __init__(self, ident: int, *, by_signal: bool) -> None:
        self.ident = ident
        self.by_signal = by_signal
        self.reason: str | None = None
        self.done = False
        self._lock = threading.Lock()

    def cut(self, reason: str) -> None:
        with self._lock:
            if self.done or self.reason is not None:
                return
            self.reason = reason
            if self.by_signal:
                signal.pthread_kill(self.ident, signal.SIGINT)
            else:
                raise_in_thread(self.ident, _BY_REASON[reason])

    def finish(self) -> None:
        """The tool returned: no cut may land after this (a pending one is cleared)."""
        with self._lock:
            self.done = True
            if not self.by_signal and self.reason is not None:
                raise_in_thread(self.ident, None)


@contextmanager
def cuttable_here(timeout: float | None, register: Callable[[Cut], Callable[[], None]]) -> Iterator[Cut]:
    """Run the block (a tool call) on this thread so that it can be cut; raises :class:`ToolCut`
    when it is, ``KeyboardInterrupt`` on a real interrupt. ``register`` makes the cut reachable by
    the runner's ``cancel`` and returns its undo."""
    main = on_main_thread()
    cut = Cut(threading.get_ident(), by_signal=main)
    previous: Any = None
    handler: Any = None
    if main:
        def handler(signum: int, frame: Any) -> None:
            if cut.done:
                return
            if cut.reason is None:  # a real Ctrl-C / Kernel › Interrupt
                cut.reason = "interrupted"
                raise KeyboardInterrupt
            raise _BY_REASON[cut.reason]()

        previous = _restorable(signal.signal(signal.SIGINT, handler))
    unregister = register(cut)
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, cut.cut, ("timeout",))
        timer.daemon = True
        timer.start()
    try:
        try:
            yield cut
        finally:
            cut.finish()
    finally:
        if timer is not None:
            timer.cancel()
        unregister()
        if main and signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)
