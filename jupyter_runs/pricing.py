"""Optional price tables: what a run cost, from its usage and prices the user supplies.

No prices are built in: they change too often to ship. A table maps a model id (``responses:gpt-5``),
or its name part (``gpt-5``), or ``*`` to dollars per million tokens::

    %config RunAssistantMagics.prices = {"gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10}}

``cached_input`` defaults to ``input``; reasoning tokens are output tokens (every OpenAI API counts
them inside ``completion_tokens``), so they cost ``output``. The widget computes the same figure
in ``js/src/reasoning.js``; this module validates tables and serves text fallbacks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

RATES = ("input", "cached_input", "output")


def check_prices(table: Any) -> dict[str, dict[str, float]]:
    """The table as plain floats; ``ValueError`` naming the first entry that is not a price."""
    if not isinstance(table, Mapping):
        raise ValueError(f"prices must be a dict of model -> {{input, output}}, got {type(table).__name__}")
    out: dict[str, dict[str, float]] = {}
    for model, entry in table.items():
        if not isinstance(model, str) or not isinstance(entry, Mapping):
            raise ValueError(f"prices[{model!r}] must be a dict such as {{'input': 1.25, 'output': 10}}")
        unknown = sorted(set(entry) - set(RATES))
        if unknown:
            raise ValueError(f"prices[{model!r}] has unknown keys {unknown}; use {', '.join(RATES)} "
                             "(dollars per million tokens)")
        rates: dict[str, float] = {}
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"prices[{model!r}][{key!r}] must be a non-negative number, got {value!r}")
            rates[key] = float(value)
        out[model] = rates
    return out


def price_for(table: Mapping[str, Mapping[str, float]], model: str) -> Mapping[str, float] | None:
    """The entry for a model id: the whole id, else its name part, else ``*``."""
    name = model.split(":", 1)[1] if ":" in model else model
    return table.get(model) or table.get(name) or table.get("*")


def run_cost(usage: Mapping[str, Any] | None, price: Mapping[str, float] | None) -> float | None:
    """Dollars for a run's usage at ``price``, or ``None`` without either."""
    if not usage or not price:
        return None
    prompt = usage.get("prompt_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    rate_in = price.get("input", 0.0)
    return ((prompt - cached) * rate_in + cached * price.get("cached_input", rate_in)
            + completion * price.get("output", 0.0)) / 1e6
