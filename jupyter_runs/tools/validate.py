"""Check tool arguments against the schema subset ``schema.py`` generates, and coerce them.

A dependency-free validator on purpose: the subset is small (type, enum, anyOf, properties,
required, additionalProperties, items, prefixItems, min/maxItems), and the messages are written for
the model to act on ("argument 'region' must be one of 'north', 'south'; got 'N'"), which a generic
validator's messages are not. Coercion covers what models commonly send a little off: numbers as
strings, ``3.0`` for an integer, ``"true"`` for a boolean.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from typing import Any

from .schema import is_pydantic, is_typeddict

_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
          "null": "null", "array": "a list", "object": "an object"}
_NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(path: str) -> str:
    return f"argument {path!r}"


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _coerce(value: Any, kind: str) -> tuple[bool, Any]:
    """``(ok, value)``: ``value`` made into ``kind`` when it is that in all but form."""
    if _is(value, kind):
        return True, value
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return True, int(value)
    if kind in ("integer", "number") and isinstance(value, str) and _NUMBER.match(value):
        number = float(value)
        if kind == "number":
            return True, int(number) if re.fullmatch(r"\s*-?\d+\s*", value) else number
        if number.is_integer():
            return True, int(number)
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return True, value.strip().lower() == "true"
    return False, value


def _describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(_show(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_WORDS.get(k, k) for k in kind)
    if kind:
        return _WORDS.get(kind, kind)
    if "anyOf" in schema:
        return " or ".join(_describe(s) for s in schema["anyOf"])
    return "any value"


def check(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> Any:
    """``value`` checked against ``schema`` and coerced; problems are appended to ``errors``."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            trial: list[str] = []
            coerced = check(value, option, path, trial)
            if not trial:
                return coerced
        errors.append(f"{_where(path)} must be {_describe(schema)}; got {_show(value)}")
        return value
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        for k in sorted(kinds, key=lambda k: not _is(value, k)):  # exact matches before coercions
            ok, coerced = _coerce(value, k)
            if ok:
                value = coerced
                break
        else:
            errors.append(f"{_where(path)} must be {_describe(schema)}; got {_show(value)}")
            return value
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{_where(path)} must be {_describe(schema)}; got {_show(value)}")
        return value
    if isinstance(value, list):
        return _check_array(value, schema, path, errors)
    if isinstance(value, dict) and ("properties" in schema or "additionalProperties" in schema):
        return check_object(value, schema, path, errors)
    return value


def _check_array(value: list[Any], schema: dict[str, Any], path: str, errors: list[str]) -> list[Any]:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and low == high and len(value) != low:
        errors.append(f"{_where(path)} must have exactly {low} items; got {len(value)}")
        return value
    if low is not None and len(value) < low:
        errors.append(f"{_where(path)} must have at least {low} items; got {len(value)}")
    if high is not None and len(value) > high:
        errors.append(f"{_where(path)} must have at most {high} items; got {len(value)}")
    prefix = schema.get("prefixItems") or []
    out = []
    for i, item in enumerate(value):
        item_schema = prefix[i] if i < len(prefix) else schema.get("items")
        out.append(check(item, item_schema, f"{path}[{i}]", errors) if item_schema else item)
    return out


def check_object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[str]) -> dict[str, Any]:
    """An object's properties; ``path`` empty means the arguments object itself."""
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = f"{path}.{key}" if path else key
        if key in props:
            out[key] = check(item, props[key], sub, errors)
        elif extra is False:
            known = ", ".join(props) or "none"
            if path:
                errors.append(f"{_where(path)} has unexpected field {key!r} (its fields are: {known})")
            else:
                errors.append(f"unexpected argument {key!r} (the parameters are: {known})")
        elif isinstance(extra, dict):
            out[key] = check(item, extra, sub, errors)
        else:
            out[key] = item
    for key in schema.get("required") or ():
        if key not in value:
            if path:
                errors.append(f"{_where(path)} is missing required field {key!r}")
            else:
                errors.append(f"missing required argument {key!r}")
    return out


# --------------------------------------------------------------------------- JSON -> Python values


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` (already validated JSON) belongs to Union member ``tp``."""
    from .schema import _Context, type_schema

    try:
        schema = type_schema(tp, _Context("", "", False))
    except Exception:
        return False
    errors: list[str] = []
    check(value, schema, "x", errors)
    return not errors


def convert(value: Any, tp: Any) -> Any:
    """Validated JSON ``value`` as the Python value type hint ``tp`` asks for (Enum members,
    dataclass and pydantic instances, tuples, sets, floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return convert(value, args[0])
    if value is None:
        return None
    if origin is typing.Union or origin is types.UnionType:
        for member in args:
            if member is not type(None) and _fits(value, member):
                return convert(value, member)
        return value
    if tp is float and isinstance(value, int):
        return float(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if isinstance(value, list):
        container = origin or tp
        if args and not (len(args) == 2 and args[1] is Ellipsis) and container is tuple:
            items = [convert(v, a) for v, a in zip(value, args)]
        else:
            items = [convert(v, args[0]) for v in value] if args else list(value)
        if container in (tuple, set, frozenset):
            return container(items)
        return items
    if isinstance(value, dict):
        if is_pydantic(tp):
            return tp.model_validate(value)
        if dataclasses.is_dataclass(tp) or is_typeddict(tp):
            from .schema import allows_none

            hints = typing.get_type_hints(tp, include_extras=True)
            # strict mode sends null for a field left at its default
            fields = {k: convert(v, hints.get(k, Any)) for k, v in value.items()
                      if v is not None or allows_none(hints.get(k, Any))}
            return fields if is_typeddict(tp) else tp(**fields)
        if (origin in (dict,) or tp is dict) and len(args) == 2:
            return {k: convert(v, args[1]) for k, v in value.items()}
    return value
