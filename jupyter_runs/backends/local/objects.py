"""Request validation and wire-object construction for the embedded engine.

Kept apart from the state machine so the engine reads as transitions, and so every object the
engine makes has all the fields the spec marks required (the server's responses are validated
against the spec in the tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from ...errors import BadRequestError
from .store import new_id

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_TYPES = ("function", "code_interpreter", "file_search")


def now() -> int:
    return int(time.time())


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(message, param=param)


def check_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(f"Invalid '{param}': expected an object of string values.", param)
    if len(value) > 16:
        raise _bad(f"Invalid '{param}': at most 16 keys, got {len(value)}.", param)
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 64:
            raise _bad(f"Invalid '{param}': keys are strings of at most 64 characters.", param)
        if not isinstance(item, str) or len(item) > 512:
            raise _bad(
                f"Invalid '{param}.{key}': values are strings of at most 512 characters.", param
            )
    return dict(value)


def check_tools(value: Any, param: str = "tools") -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"Invalid '{param}': expected an array of tools.", param)
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type") not in _TOOL_TYPES:
            raise _bad(
                f"Invalid '{where}.type': expected one of {', '.join(_TOOL_TYPES)}.", where
            )
        if tool["type"] == "function":
            fn = tool.get("function")
            if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                raise _bad(f"Missing required parameter: '{where}.function.name'.", where)
            if not _FUNCTION_NAME.match(fn["name"]):
                raise _bad(
                    f"Invalid '{where}.function.name': {fn['name']!r} does not match "
                    "'^[a-zA-Z0-9_-]{1,64}$'.",
                    where,
                )
    return [dict(t) for t in value]


def function_names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools if t.get("type") == "function"]


def check_number(body: Mapping[str, Any], key: str, low: float, high: float | None) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"Invalid '{key}': expected a number, got {value!r}.", key)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _bad(f"Invalid '{key}': must be {bound}, got {value}.", key)
    return value


def check_int(body: Mapping[str, Any], key: str, low: int = 1) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"Invalid '{key}': expected an integer, got {value!r}.", key)
    if value < low:
        raise _bad(f"Invalid '{key}': must be at least {low}, got {value}.", key)
    return value


def check_tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return "auto"
    names = function_names(tools)
    if value in ("none", "auto"):
        return value
    if value == "required":
        if not names:
            raise _bad("Invalid 'tool_choice': 'required' needs at least one function tool.",
                       "tool_choice")
        return value
    if isinstance(value, Mapping) and value.get("type") == "function":
        name = (value.get("function") or {}).get("name")
        if name not in names:
            raise _bad(
                f"Invalid 'tool_choice': no function tool named {name!r} on this run "
                f"(tools: {', '.join(names) or 'none'}).",
                "tool_choice",
            )
        return {"type": "function", "function": {"name": name}}
    if isinstance(value, Mapping) and value.get("type") in ("code_interpreter", "file_search"):
        return dict(value)
    raise _bad(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        "tool_choice",
    )


def check_truncation(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "auto", "last_messages": None}
    if not isinstance(value, Mapping) or value.get("type") not in ("auto", "last_messages"):
        raise _bad("Invalid 'truncation_strategy.type': expected 'auto' or 'last_messages'.",
                   "truncation_strategy")
    last = value.get("last_messages")
    if value["type"] == "last_messages" and (
        isinstance(last, bool) or not isinstance(last, int) or last < 1
    ):
        raise _bad(
            "Invalid 'truncation_strategy.last_messages': expected an integer >= 1.",
            "truncation_strategy",
        )
    return {"type": value["type"], "last_messages": last}


def check_response_format(value: Any) -> Any:
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, Mapping) and value.get("type") in ("text", "json_object", "json_schema"):
        return dict(value)
    raise _bad(
        "Invalid 'response_format': expected 'auto' or {\"type\": \"text\" | \"json_object\" | "
        '"json_schema"}.',
        "response_format",
    )


def _content_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    if not isinstance(content, list) or not content:
        raise _bad(f"Invalid '{param}': expected a string or a non-empty array of parts.", param)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        elif kind == "text" and isinstance(part.get("text"), Mapping):  # already in object form
            parts.append({"type": "text", "text": {"value": str(part["text"].get("value", "")),
                                                   "annotations": []}})
        elif kind in ("image_url", "image_file") and isinstance(part.get(kind), Mapping):
            parts.append({"type": kind, kind: dict(part[kind])})
        else:
            raise _bad(
                f"Invalid '{param}[{i}]': expected a text, image_url or image_file part.", param
            )
    return parts


def new_assistant(body: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad("Missing required parameter: 'model'.", "model")
    assistant = {
        "id": new_id("asst"), "object": "assistant", "created_at": now(), "name": None,
        "description": None, "model": body["model"], "instructions": None, "tools": [],
        "tool_resources": {}, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "response_format": "auto",
    }
    return update_assistant(assistant, body)


def update_assistant(assistant: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("name", "description", "instructions"):
        if key in body:
            if body[key] is not None and not isinstance(body[key], str):
                raise _bad(f"Invalid '{key}': expected a string.", key)
            assistant[key] = body[key]
    if "model" in body:
        if not isinstance(body["model"], str) or not body["model"]:
            raise _bad("Invalid 'model': expected a model id such as 'openai:gpt-4.1-mini'.",
                       "model")
        assistant["model"] = body["model"]
    if "tools" in body:
        assistant["tools"] = check_tools(body["tools"])
    if "metadata" in body:
        assistant["metadata"] = check_metadata(body["metadata"])
    if "tool_resources" in body:
        assistant["tool_resources"] = dict(body["tool_resources"] or {})
    for key, high in (("temperature", 2), ("top_p", 1)):
        if key in body:
            value = check_number(body, key, 0, high)
            assistant[key] = 1.0 if value is None else value
    if "response_format" in body:
        assistant["response_format"] = check_response_format(body["response_format"])
    return assistant


def new_thread(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("thread"), "object": "thread", "created_at": now(),
        "tool_resources": dict(body.get("tool_resources") or {}),
        "metadata": check_metadata(body.get("metadata")),
    }


def new_message(thread_id: str, body: Any, param: str = "") -> dict[str, Any]:
    """A user- or caller-made message (complete on arrival)."""
    prefix = f"{param}." if param else ""
    if not isinstance(body, Mapping):
        raise _bad(f"Invalid '{param or 'body'}': expected a message object.", param or None)
    if body.get("role") not in ("user", "assistant"):
        raise _bad(f"Invalid '{prefix}role': expected 'user' or 'assistant'.", f"{prefix}role")
    if "content" not in body:
        raise _bad(f"Missing required parameter: '{prefix}content'.", f"{prefix}content")
    created = now()
    return {
        "id": new_id("msg"), "object": "thread.message", "created_at": created,
        "thread_id": thread_id, "status": "completed", "incomplete_details": None,
        "completed_at": created, "incomplete_at": None, "role": body["role"],
        "content": _content_parts(body["content"], f"{prefix}content"), "assistant_id": None,
        "run_id": None, "attachments": list(body.get("attachments") or []),
        "metadata": check_metadata(body.get("metadata"), f"{prefix}metadata"),
    }


def assistant_message(run: Mapping[str, Any]) -> dict[str, Any]:
    """The (still empty) reply message a run is writing."""
    return {
        "id": new_id("msg"), "object": "thread.message", "created_at": now(),
        "thread_id": run["thread_id"], "status": "in_progress", "incomplete_details": None,
        "completed_at": None, "incomplete_at": None, "role": "assistant", "content": [],
        "assistant_id": run["assistant_id"], "run_id": run["id"], "attachments": [],
        "metadata": {},
    }


def new_step(run: Mapping[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("step"), "object": "thread.run.step", "created_at": now(),
        "run_id": run["id"], "assistant_id": run["assistant_id"], "thread_id": run["thread_id"],
        "type": details["type"], "status": "in_progress", "cancelled_at": None,
        "completed_at": None, "expired_at": None, "failed_at": None, "last_error": None,
        "step_details": details, "usage": None, "metadata": {},
    }


def new_run(
    thread_id: str, assistant: Mapping[str, Any], body: Mapping[str, Any], expires_after: float
) -> dict[str, Any]:
    """A queued run from a create-run body, with the assistant's settings as defaults."""
    tools = check_tools(body["tools"]) if body.get("tools") is not None else list(assistant["tools"])
    model = body.get("model") or assistant["model"]
    if not isinstance(model, str):
        raise _bad("Invalid 'model': expected a string.", "model")
    instructions = body.get("instructions")
    if instructions is None:
        instructions = assistant.get("instructions")
    extra = body.get("additional_instructions")
    if extra:
        if not isinstance(extra, str):
            raise _bad("Invalid 'additional_instructions': expected a string.",
                       "additional_instructions")
        instructions = f"{instructions}\n\n{extra}" if instructions else extra
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad("Invalid 'parallel_tool_calls': expected a boolean.", "parallel_tool_calls")
    temperature = check_number(body, "temperature", 0, 2)
    top_p = check_number(body, "top_p", 0, 1)
    created = now()
    return {
        "id": new_id("run"), "object": "thread.run", "created_at": created,
        "assistant_id": assistant["id"], "thread_id": thread_id, "status": "queued",
        "started_at": None, "expires_at": created + int(expires_after), "cancelled_at": None,
        "failed_at": None, "completed_at": None, "required_action": None, "last_error": None,
        "model": model, "instructions": instructions or "", "tools": tools,
        "metadata": check_metadata(body.get("metadata")),
        "temperature": temperature if temperature is not None else assistant.get("temperature"),
        "top_p": top_p if top_p is not None else assistant.get("top_p"),
        # The spec's minimum: smaller budgets could not hold a prompt and a reply.
        "max_completion_tokens": check_int(body, "max_completion_tokens", 256),
        "max_prompt_tokens": check_int(body, "max_prompt_tokens", 256),
        "truncation_strategy": check_truncation(body.get("truncation_strategy")),
        "incomplete_details": None, "usage": None,
        "response_format": check_response_format(
            body.get("response_format") or assistant.get("response_format")
        ),
        "tool_choice": check_tool_choice(body.get("tool_choice"), tools),
        "parallel_tool_calls": True if parallel is None else parallel,
    }
