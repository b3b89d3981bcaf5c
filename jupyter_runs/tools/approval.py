"""Approval of tool calls: the request a hook sees and the decision it returns.

Hooks come in many shapes (the widget's card, a lambda, a terminal prompt), so a decision may be an
:class:`ApprovalDecision`, a bool, or any mapping/object with ``approved``, ``arguments`` and
``reason``; :func:`decision_of` reads them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class ApprovalRequest:
    """A tool call waiting for the user's go-ahead."""

    tool_call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ApprovalDecision:
    """The user's answer; ``arguments`` (a dict, or its JSON text) replaces the model's when given,
    and is validated again."""

    approved: bool
    arguments: dict[str, Any] | str | None = None
    reason: str | None = None


def decision_of(answer: Any) -> ApprovalDecision:
    """Whatever a hook returned, as a decision (``None`` and falsy mean no)."""
    if isinstance(answer, ApprovalDecision):
        return answer
    if isinstance(answer, bool) or answer is None:
        return ApprovalDecision(bool(answer))
    get = answer.get if isinstance(answer, Mapping) else lambda k, d=None: getattr(answer, k, d)
    return ApprovalDecision(bool(get("approved", False)), get("arguments"), get("reason"))


def _format_call(name: str, args: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return f"{name}({shown if len(shown) <= 200 else shown[:197] + '...'})"


def ask_on_stdin(request: ApprovalRequest) -> ApprovalDecision:
    """The approver of last resort in sync code: ask on the terminal / notebook input box."""
    answer = input(f"Run tool {_format_call(request.name, request.arguments)}? [y/N] ")
    return ApprovalDecision(answer.strip().lower() in ("y", "yes"))
