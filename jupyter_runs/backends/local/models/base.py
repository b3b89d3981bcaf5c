"""What the engine asks of a model and what it gets back: the types every adapter speaks.

The engine speaks to every model through :class:`ModelAdapter`: a Chat Completions-shaped
:class:`ModelRequest` in, a stream of small typed events (:data:`ModelEvent`) out. Adapters import
these types from here, never from the registry in ``__init__.py``, so no adapter depends on the
module that picks one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, Union


@dataclass
class ModelRequest:
    """One model call. ``messages`` and ``tools`` are in Chat Completions form; ``call_index`` is the
    number of model calls this run made before (the scripted model answers turn ``call_index``)."""

    model: str  # the name part of the id (``gpt-4.1-mini``), not the provider
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    response_format: Any = None
    run_id: str = ""
    call_index: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. ``index`` orders parallel calls; ``id`` and ``name`` come
    with the first piece of a call, ``arguments`` accumulates."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning summary (Responses ``reasoning_summary_text``, or the
    ``reasoning_content`` some Chat Completions servers stream). ``part`` numbers the summary's
    paragraphs; a new part starts a new paragraph."""

    text: str
    part: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. ``reasoning_tokens`` are part of ``completion_tokens`` and
    ``cached_tokens`` part of ``prompt_tokens``, as every OpenAI API counts them."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event of a call: ``stop``, ``tool_calls``, ``length`` or ``content_filter``."""

    reason: str


ModelEvent = Union[TextDelta, ReasoningDelta, ToolCallDelta, Usage, Finish]  # noqa: UP007 - a runtime alias on 3.10


class ModelAdapter(Protocol):
    """A model the engine can stream from. Raise :class:`ModelError` (with ``code`` one of
    ``server_error``, ``rate_limit_exceeded``, ``invalid_prompt``) on failure; closing the iterator
    early (cancel) must close the underlying connection."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]: ...

    async def aclose(self) -> None: ...


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"openai:gpt-4.1-mini"`` -> ``("openai", "gpt-4.1-mini")``; a bare name means ``openai``."""
    provider, sep, name = model_id.partition(":")
    if not sep:
        return "openai", model_id
    return provider, name
