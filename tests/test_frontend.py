"""The rule that decides whether a ``%%run_assistant`` cell may return while its run streams."""

from __future__ import annotations

from typing import Any

import pytest
from ipywidgets import Widget

from jupyter_runs.frontend import widget_frontend_attached


class FakeKernel:
    def __init__(self, allow_stdin: bool | None) -> None:
        self.content = {} if allow_stdin is None else {"allow_stdin": allow_stdin}

    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        return {"header": {"msg_type": "execute_request"}, "content": self.content}


class FakeShell:
    def __init__(self, allow_stdin: bool | None) -> None:
        self.kernel = FakeKernel(allow_stdin)


@pytest.fixture
def control_comm(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(Widget, "_control_comm", None)
    return lambda: monkeypatch.setattr(Widget, "_control_comm", object())


def test_an_execute_request_without_stdin_is_headless(control_comm: Any) -> None:
    assert widget_frontend_attached(FakeShell(allow_stdin=False)) is False  # nbclient's request


def test_an_execute_request_with_stdin_is_interactive(control_comm: Any) -> None:
    assert widget_frontend_attached(FakeShell(allow_stdin=True)) is True  # JupyterLab, Notebook 7, VS Code


def test_an_open_widget_control_comm_means_attached_whatever_the_request(control_comm: Any) -> None:
    control_comm()
    assert widget_frontend_attached(FakeShell(allow_stdin=False)) is True


def test_no_kernel_is_not_a_widget_front_end(control_comm: Any) -> None:
    assert widget_frontend_attached(object()) is False  # terminal IPython


def test_a_voila_kernel_counts_as_attached(monkeypatch) -> None:
    from jupyter_runs import frontend

    monkeypatch.delenv("VOILA_SERVER_URL", raising=False)
    monkeypatch.delenv("VOILA_BASE_URL", raising=False)
    assert frontend.widget_frontend_attached(None) is False
    monkeypatch.setenv("VOILA_SERVER_URL", "/")
    assert frontend.widget_frontend_attached(None) is True
