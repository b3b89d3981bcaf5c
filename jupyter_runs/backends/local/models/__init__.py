"""Model adapters: the id -> adapter registry. One module per adapter, their shared types in ``base``.

Ids are ``provider:name`` (DESIGN.md): ``openai:``, ``ollama:``, ``compat:`` (OpenAI-compatible
Chat Completions, ``chat.py``), ``responses:`` (the Responses API, ``responses.py``; both over the
shared HTTP layer in ``_http.py``) and ``scripted:PATH.json`` (deterministic, offline,
``scripted.py``); ``cassette.py`` records and replays any of them. No adapter imports this
module (they take their types from ``base.py``), so there is no circle. The base names are handed
on here so ``from .models import ModelRequest`` reads as before.
"""

from __future__ import annotations

from typing import Any

from ....errors import ModelError
from .base import (
    Finish,
    ModelAdapter,
    ModelEvent,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
    split_model_id,
)
from .chat import ChatCompletionsModel

__all__ = ["ChatCompletionsModel", "Finish", "ModelAdapter", "ModelEvent", "ModelRequest",
           "ReasoningDelta", "TextDelta", "ToolCallDelta", "Usage", "resolve_model", "split_model_id"]


def resolve_model(model_id: str, **config: Any) -> ModelAdapter:
    """The adapter for a ``provider:name`` id. ``config`` may carry ``base_url`` / ``api_key``
    overrides (``compat:`` needs ``base_url``), and ``scripted_dir`` (see ``ScriptedModel``).
    Unknown providers raise ``ModelError`` with code ``invalid_prompt`` naming the accepted ones."""
    provider, name = split_model_id(model_id)
    scripted_dir = config.pop("scripted_dir", None)  # a served engine confines scripted: paths
    if provider == "scripted":
        from .scripted import ScriptedModel

        return ScriptedModel(name, root=scripted_dir)
    if provider in ("openai", "ollama", "compat"):
        return ChatCompletionsModel.for_provider(provider, name=name, **config)
    if provider == "responses":
        from .responses import ResponsesModel

        return ResponsesModel.for_provider(name=name, **config)
    raise ModelError(
        f"unknown model provider {provider!r} in {model_id!r}; use openai:NAME, ollama:NAME, "
        "compat:NAME (with base_url), responses:NAME or scripted:PATH.json",
        code="invalid_prompt",
    )
