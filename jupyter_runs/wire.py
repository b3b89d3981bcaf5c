"""Wire objects: the Assistants API's JSON objects with attribute access.

Objects stay the JSON dicts they arrived as (a ``dict`` subclass), so nothing is lost on the way
through: unknown fields are kept, ``to_dict()`` gives the wire form back, and the fold, the server
and the widget can all work on plain dicts without converting. Attribute access covers every field
the spec lists (``None`` when absent) and any extra field present; nested dicts come back wrapped so
``run.required_action.submit_tool_outputs.tool_calls[0].function.name`` reads naturally.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


def _wrap(value: Any) -> Any:
    if type(value) is dict:
        return WireObject(value)
    if type(value) is list:
        return [_wrap(v) for v in value]
    return value


class WireObject(dict):
    """A JSON object from the API; ``obj.field`` reads ``obj["field"]``."""

    fields: ClassVar[tuple[str, ...]] = ()
    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self[name])
        except KeyError:
            if name in type(self).fields:
                return None
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self) | set(type(self).fields))

    def __repr__(self) -> str:
        ident = self.get("id")
        head = f"{type(self).__name__}(id={ident!r}" if ident else f"{type(self).__name__}("
        extra = ""
        if "status" in self:
            extra = f", status={self['status']!r}"
        return head + extra + ")" if ident or extra else f"{type(self).__name__}({dict(self)!r})"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain JSON-able dicts and lists."""
        return copy.deepcopy(dict(self))


class Assistant(WireObject):
    fields = ("id", "object", "created_at", "name", "description", "model", "instructions",
              "tools", "tool_resources", "metadata", "temperature", "top_p", "response_format")
    __slots__ = ()


class Thread(WireObject):
    fields = ("id", "object", "created_at", "tool_resources", "metadata")
    __slots__ = ()


class Message(WireObject):
    fields = ("id", "object", "created_at", "thread_id", "status", "incomplete_details",
              "completed_at", "incomplete_at", "role", "content", "assistant_id", "run_id",
              "attachments", "metadata")
    __slots__ = ()

    @property
    def text(self) -> str:
        """The message's text parts joined (what a person reads)."""
        return "".join(
            part["text"]["value"]
            for part in self.get("content") or ()
            if part.get("type") == "text" and part.get("text")
        )


class Run(WireObject):
    """The run object (``thread.run``). The driver with methods is :class:`jupyter_runs.Run`."""

    fields = ("id", "object", "created_at", "thread_id", "assistant_id", "status",
              "required_action", "last_error", "expires_at", "started_at", "cancelled_at",
              "failed_at", "completed_at", "incomplete_details", "model", "instructions", "tools",
              "metadata", "usage", "temperature", "top_p", "max_prompt_tokens",
              "max_completion_tokens", "truncation_strategy", "tool_choice", "parallel_tool_calls",
              "response_format")
    __slots__ = ()


class RunStep(WireObject):
    fields = ("id", "object", "created_at", "assistant_id", "thread_id", "run_id", "type",
              "status", "step_details", "last_error", "expired_at", "cancelled_at", "failed_at",
              "completed_at", "metadata", "usage")
    __slots__ = ()


class MessageDelta(WireObject):
    fields = ("id", "object", "delta")
    __slots__ = ()


class RunStepDelta(WireObject):
    fields = ("id", "object", "delta")
    __slots__ = ()


class ListPage(WireObject):
    fields = ("object", "data", "first_id", "last_id", "has_more")
    __slots__ = ()


class Deleted(WireObject):
    fields = ("id", "object", "deleted")
    __slots__ = ()


#: ``object`` field -> wire class, used to wrap API responses.
OBJECT_TYPES: dict[str, type[WireObject]] = {
    "assistant": Assistant,
    "thread": Thread,
    "thread.message": Message,
    "thread.run": Run,
    "thread.run.step": RunStep,
    "thread.message.delta": MessageDelta,
    "thread.run.step.delta": RunStepDelta,
    "list": ListPage,
    "assistant.deleted": Deleted,
    "thread.deleted": Deleted,
    "thread.message.deleted": Deleted,
}


def wrap(data: Any) -> Any:
    """Wrap an API JSON value in the wire class its ``object`` field names (lists: each item)."""
    if isinstance(data, dict):
        cls = OBJECT_TYPES.get(data.get("object", ""), WireObject)
        obj = cls(data)
        if cls is ListPage:
            obj["data"] = [wrap(d) for d in data.get("data", [])]
        return obj
    return data


#: Every event name of the spec's ``AssistantStreamEvent``. Others are passed on, never fatal.
RUN_EVENTS = (
    "thread.run.created", "thread.run.queued", "thread.run.in_progress",
    "thread.run.requires_action", "thread.run.completed", "thread.run.incomplete",
    "thread.run.failed", "thread.run.cancelling", "thread.run.cancelled", "thread.run.expired",
)
STEP_EVENTS = (
    "thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.delta",
    "thread.run.step.completed", "thread.run.step.failed", "thread.run.step.cancelled",
    "thread.run.step.expired",
)
MESSAGE_EVENTS = (
    "thread.message.created", "thread.message.in_progress", "thread.message.delta",
    "thread.message.completed", "thread.message.incomplete",
)
KNOWN_EVENTS = frozenset(("thread.created", *RUN_EVENTS, *STEP_EVENTS, *MESSAGE_EVENTS, "error", "done"))

#: Run statuses after which nothing more happens.
TERMINAL_STATUSES = frozenset(("completed", "incomplete", "failed", "cancelled", "expired"))


@dataclass(frozen=True, slots=True)
class Event:
    """One stream event, exactly as on the wire: ``event`` name and decoded ``data`` (a dict for
    every event but ``done``, whose data is the string ``"[DONE]"``)."""

    event: str
    data: Any

    @property
    def object(self) -> Any:
        """``data`` wrapped in its wire class (allocates; the fold reads ``data`` directly)."""
        return wrap(self.data)

    def to_sse(self) -> bytes:
        """This event as SSE bytes (``event:`` + ``data:`` lines, blank line)."""
        payload = self.data if isinstance(self.data, str) else _compact_json(self.data)
        return f"event: {self.event}\ndata: {payload}\n\n".encode()


def _compact_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"))``, with the C encoder made once. ``dumps`` with
    any option builds a new ``JSONEncoder`` and a new C encoder per call, which cost the served
    engine a fifth of its CPU per event (issue 18). No circular-reference check: event data are
    JSON trees (a cycle would end in RecursionError rather than hang)."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = _make_encoder()
    return _ENCODER(value)


def _make_encoder() -> Callable[[Any], str]:
    import json
    from json import encoder

    def default(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(separators=(",", ":")).encode
    chunks = make(None, default, encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    fallback = json.JSONEncoder(separators=(",", ":")).encode

    def encode(value: Any) -> str:
        if type(value) is not dict:  # the C encoder takes containers; scalars are rare here
            return fallback(value)
        return "".join(chunks(value, 0))

    return encode


_ENCODER: Callable[[Any], str] | None = None
