"""Python callables as function tools, one module per stage a tool call passes through.

``schema`` (callable -> JSON schema), ``validate`` (arguments against it), ``approval`` (the
request/decision a hook sees), ``runner`` (:class:`ToolRunner`: the allowlist, execution, records),
``cut`` (timeouts, Stop, interrupts), ``capture`` (a call's printed output and displays) and
``encode`` (return values and notebook objects as text for the model). This package hands on the
public names so ``from jupyter_runs.tools import ToolRunner`` reads as before.
"""

from __future__ import annotations

from .approval import ApprovalDecision, ApprovalRequest
from .runner import (
    DEFAULT_TOOL_TIMEOUT,
    Namespace,
    ToolCallRecord,
    ToolRunner,
    to_tool_params,
    tool,
    tool_param,
    tool_spec,
)

__all__ = ["ApprovalDecision", "ApprovalRequest", "DEFAULT_TOOL_TIMEOUT", "Namespace", "ToolCallRecord",
           "ToolRunner", "tool", "tool_param", "tool_spec", "to_tool_params"]
