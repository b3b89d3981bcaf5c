"""Request bodies and query parameters, checked at the server edge against the spec subset.

One validator (jsonschema, over the spec's own request schemas) rather than per-field checks in
the engine: a body the spec refuses (``tool_resources: 5``, ``{"messages": {}}``, an unknown
field) is a 400 naming the parameter before the engine sees it. ``_spec.json`` holds the part of
``tests/fixtures/spec/assistants-subset.yaml`` the server needs (pyyaml is not a runtime
dependency); ``python -m tests.openapi_spec`` regenerates it and a test checks it is current.

The JSON parser itself refuses what the schemas cannot see: ``NaN``/``Infinity`` (not JSON, and
echoing them back makes the response unparseable) and nesting deeper than :data:`MAX_DEPTH` (free
form parts such as a tool's ``parameters`` are copied recursively by the engine).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .errors import BadRequestError

MAX_DEPTH = 64  # objects/arrays inside each other; real tool schemas stay far below this
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_KIND = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
         int: "an integer", float: "a number", type(None): "null"}
_TYPE = {"object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
         "integer": "an integer", "number": "a number", "null": "null"}


class _NotFinite(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _NotFinite(name)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _NotFinite(text)
    return value


def parse_body(raw: bytes, where: str) -> dict[str, Any]:
    """The JSON object in ``raw`` (``{}`` when empty); ``BadRequestError`` for anything else.
    ``where`` names the endpoint in the message."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except _NotFinite as exc:
        raise BadRequestError(
            f"The JSON body contains {exc}, which is not a finite number; JSON numbers must be "
            "finite.", code="invalid_json") from None
    except RecursionError:
        body = None  # deeper than the parser goes: reported as too deep below
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(
            f"We could not parse the JSON body of your request ({exc}). The body must be a "
            "JSON object.", code="invalid_json") from None
    if body is None or _too_deep(body):
        raise BadRequestError(f"The JSON body nests objects and arrays more than {MAX_DEPTH} "
                              "levels deep.", code="invalid_json")
    if not isinstance(body, dict):
        raise BadRequestError(f"The JSON body of {where} must be an object, got "
                              f"{_KIND.get(type(body), type(body).__name__)}.", code="invalid_json")
    return body


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]  # iterative: a recursive walk is what deep input is meant to break
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


@functools.cache
def _spec() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("_spec.json").read_text("utf-8"))


@functools.cache
def _validator(schema: str) -> Any:
    from jsonschema import Draft202012Validator  # lazily: only the server validates

    return Draft202012Validator({"$defs": _spec()["$defs"], "$ref": f"#/$defs/{schema}"})


def check_body(op: str, body: dict[str, Any]) -> None:
    """Raise ``BadRequestError`` naming the parameter unless ``body`` fits ``op``'s request
    schema (operations without a body schema accept any object, as before)."""
    schema = _spec()["operations"][op]["body"]
    if schema is None:
        return
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(body))
    if error is not None:
        raise _bad_request(error)


def check_query(op: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """The query parameters ``op`` takes, each checked against the spec: a value for a scalar
    parameter, a list for an array one. A scalar given twice is an error (a list must never reach
    the store as a page cursor); parameters the operation does not take are dropped."""
    from jsonschema import Draft202012Validator

    out: dict[str, Any] = {}
    for name, schema in _spec()["operations"][op]["query"].items():
        values = query.get(name)
        if values is None:
            continue
        if schema.get("type") == "array":
            value: Any = list(values)
            checked: Any = value
        else:
            if len(values) > 1:
                raise BadRequestError(f"Query parameter '{name}' was given {len(values)} times; "
                                      "give it once.", param=name, code="invalid_value")
            value = checked = values[0]
            if schema.get("type") == "integer":
                if not _INTEGER.match(value):
                    raise BadRequestError(f"Invalid value for '{name}': expected an integer, got "
                                          f"{_show(value)}.", param=name, code="invalid_value")
                checked = int(value)
        for error in Draft202012Validator(schema).iter_errors(checked):
            raise BadRequestError(f"Invalid value for '{name}': {_short(error.message)}.",
                                  param=name, code="invalid_value")
        out[name] = value
    return out


def _bad_request(error: Any) -> BadRequestError:
    path = list(error.absolute_path)
    kind = error.validator
    if kind == "required":
        missing = next((n for n in error.validator_value if n not in error.instance), "?")
        param = _param([*path, missing])
        return BadRequestError(f"Missing required parameter: '{param}'.", param=param,
                               code="missing_required_parameter")
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = sorted(k for k in error.instance if k not in known)[:1] or ["?"]
        param = _param([*path, extra[0]])
        return BadRequestError(f"Unrecognized request argument supplied: {param}", param=param,
                               code="unknown_parameter")
    param = _param(path) or "body"
    expected = _expected(error)
    if expected is not None:
        got = _KIND.get(type(error.instance), type(error.instance).__name__)
        return BadRequestError(f"Invalid type for '{param}': expected {expected}, but got {got} "
                               "instead.", param=param, code="invalid_type")
    return BadRequestError(f"Invalid value for '{param}': {_short(error.message)}.", param=param,
                           code="invalid_value")


def _expected(error: Any) -> str | None:
    """'an array or null' when ``error`` is a type mismatch (also one wrapped in anyOf/oneOf
    whose branches all failed on type), else None."""
    if error.validator == "type":
        kinds = error.validator_value
        kinds = [kinds] if isinstance(kinds, str) else kinds
        return " or ".join(_TYPE.get(k, k) for k in kinds)
    if error.validator in ("anyOf", "oneOf") and error.context and all(
        e.validator == "type" and not e.relative_path for e in error.context
    ):
        kinds: list[str] = []
        for e in error.context:
            for k in [e.validator_value] if isinstance(e.validator_value, str) else e.validator_value:
                if _TYPE.get(k, k) not in kinds:
                    kinds.append(_TYPE.get(k, k))
        return " or ".join(kinds)
    return None


def _param(path: list[Any]) -> str:
    """``['messages', 0, 'content']`` -> ``messages[0].content`` (the API's way to name one)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(text: str) -> str:
    # jsonschema quotes the offending value; a megabyte string must not come back in the error
    return text if len(text) <= 300 else text[:297] + "..."
