"""Callable -> JSON schema of its parameters, and docstring parsing.

Schemas are built from the signature and type hints only (no pydantic needed; pydantic models are
mapped when pydantic is installed). Everything is inlined (no ``$ref``) so the small validator in
``validate.py`` and OpenAI strict mode both take the schema as is. Types we cannot describe are
refused with a ToolError naming the function and the parameter, rather than silently widened to
"anything", because a model that guesses a shape gets a confusing validation error later.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ToolError

_NONE = type(None)
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


# --------------------------------------------------------------------------- docstrings

_GOOGLE_PARAMS = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters)\s*:\s*$", re.I
)
_GOOGLE_ANY = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Returns?|"
    r"Yields?|Raises?|Examples?|Notes?|Note|See Also|Attributes|Warnings?|Warns|References|Todo)\s*:\s*$",
    re.I,
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_SPHINX_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]*?))?\s*:\s*(.*)$")
_SPHINX_PARAM_KINDS = {"param", "parameter", "arg", "argument", "key", "keyword"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: description})`` from a Google, NumPy, Sphinx or plain docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    if any(_sphinx_param(line) for line in lines):
        return _parse_sphinx(lines)
    for i in range(len(lines) - 1):
        if lines[i].strip() and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]):
            return _parse_numpy(lines)
    if any(_GOOGLE_ANY.match(line.strip()) for line in lines):
        return _parse_google(lines)
    return _join(lines), {}


def _sphinx_param(line: str) -> re.Match[str] | None:
    m = _SPHINX_FIELD.match(line.strip())
    return m if m and m.group(1) in _SPHINX_PARAM_KINDS and m.group(2) else None


def _parse_sphinx(lines: list[str]) -> tuple[str, dict[str, str]]:
    first = next(i for i, line in enumerate(lines) if _SPHINX_FIELD.match(line.strip()))
    params: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[first:]:
        field = _SPHINX_FIELD.match(line.strip())
        if field:
            current = None
            m = _sphinx_param(line)
            if m:
                name = m.group(2).split()[-1].lstrip("*")  # ":param int count:" -> count
                current = params.setdefault(name, [])
                current.append(m.group(3))
        elif current is not None and line.strip():
            current.append(line.strip())
    return _join(lines[:first]), {k: " ".join(v).strip() for k, v in params.items()}


def _parse_numpy(lines: list[str]) -> tuple[str, dict[str, str]]:
    headers = [i for i in range(len(lines) - 1)
               if lines[i].strip() and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1])]
    params: dict[str, list[str]] = {}
    for n, start in enumerate(headers):
        if lines[start].strip().lower() not in ("parameters", "other parameters", "keyword arguments"):
            continue
        end = headers[n + 1] if n + 1 < len(headers) else len(lines)
        current: list[str] | None = None
        for line in lines[start + 2:end]:
            if not line.strip():
                continue
            if _indent(line) == 0:
                m = _NUMPY_ENTRY.match(line.strip())
                if m is None:
                    current = None
                    continue
                for name in re.split(r"\s*,\s*", line.split(":")[0].strip()):
                    current = params.setdefault(name.lstrip("*"), [])
            elif current is not None:
                current.append(line.strip())
    return _join(lines[: headers[0]]), {k: " ".join(v).strip() for k, v in params.items()}


def _parse_google(lines: list[str]) -> tuple[str, dict[str, str]]:
    first = next(i for i, line in enumerate(lines) if _GOOGLE_ANY.match(line.strip()))
    params: dict[str, list[str]] = {}
    i = first
    while i < len(lines):
        line = lines[i]
        if not _GOOGLE_PARAMS.match(line.strip()):
            i += 1
            continue
        header_indent = _indent(line)
        entry_indent: int | None = None
        current: list[str] | None = None
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= header_indent:
                break
            if line.strip():
                if entry_indent is None:
                    entry_indent = _indent(line)
                m = _GOOGLE_ENTRY.match(line.strip()) if _indent(line) == entry_indent else None
                if m:
                    current = params.setdefault(m.group(1), [])
                    current.append(m.group(2))
                elif current is not None:
                    current.append(line.strip())
            i += 1
    return _join(lines[:first]), {k: " ".join(v).strip() for k, v in params.items()}


# --------------------------------------------------------------------------- types -> schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also accepts null (how strict mode marks a parameter optional)."""
    out = dict(schema)
    if "anyOf" in out:
        if {"type": "null"} not in out["anyOf"]:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    kind = out.get("type")
    if isinstance(kind, str):
        if kind == "null":
            return out
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        if "null" not in kind:
            out["type"] = [*kind, "null"]
    elif "enum" not in out:
        return out  # no type: already anything, null included
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


class _Context:
    """Where a schema is being built, for error messages, and the strictness."""

    def __init__(self, owner: str, param: str, strict: bool) -> None:
        self.owner, self.param, self.strict = owner, param, strict
        self.seen: list[Any] = []

    def refuse(self, why: str) -> ToolError:
        return ToolError(f"tool {self.owner!r}: parameter {self.param!r}: {why}")


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    schema["enum"] = values
    return schema


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return None


def is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_fields") and hasattr(tp, "model_validate")


def type_schema(tp: Any, ctx: _Context) -> dict[str, Any]:
    """The JSON schema for one type hint."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema = type_schema(args[0], ctx)
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema = {"description": " ".join(notes), **{k: v for k, v in schema.items() if k != "description"}}
        return schema
    if tp is Any or tp is inspect.Parameter.empty or tp is object:
        if ctx.strict:
            raise ctx.refuse("strict mode needs a type hint (Any can't be expressed)")
        return {}
    if tp is None or tp is _NONE:
        return {"type": "null"}
    if tp in _TYPE_NAMES:
        return {"type": _TYPE_NAMES[tp]}
    if origin is typing.Literal:
        return _enum_schema(list(args))
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not _NONE]
        if len(members) == 1:
            schema = type_schema(members[0], ctx)
        else:
            schema = {"anyOf": [type_schema(a, ctx) for a in members]}
        return nullable(schema) if len(members) < len(args) else schema
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp])
    if tp in (list, set, frozenset, Sequence) or origin in (list, set, frozenset, Sequence):
        if not args:
            if ctx.strict:
                raise ctx.refuse("strict mode needs the item type (list[T])")
            return {"type": "array"}
        return {"type": "array", "items": type_schema(args[0], ctx)}
    if tp is tuple or origin is tuple:
        if not args:
            return type_schema(list, ctx)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0], ctx)}
        if ctx.strict:
            raise ctx.refuse("strict mode can't express fixed-length tuples; use list[T] or a dataclass")
        items = [type_schema(a, ctx) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if ctx.strict:
            raise ctx.refuse("strict mode can't express free-form dicts; use a dataclass or TypedDict")
        if args and args[0] is not str:
            raise ctx.refuse(f"dict keys must be str in JSON, not {args[0]!r}")
        return {"type": "object", "additionalProperties": type_schema(args[1], ctx)} if args else {"type": "object"}
    if dataclasses.is_dataclass(tp) or is_typeddict(tp) or is_pydantic(tp):
        return _record_schema(tp, ctx)
    raise ctx.refuse(f"type {getattr(tp, '__name__', tp)!r} has no JSON schema; use str, int, float, bool, "
                     "Literal, Enum, list, dict, a dataclass, TypedDict or pydantic model")


def object_schema(
    props: dict[str, dict[str, Any]], required: list[str], strict: bool, description: str = ""
) -> dict[str, Any]:
    """An object schema; in strict mode every property is required and optional ones nullable."""
    if strict:
        props = {k: (v if k in required else nullable(v)) for k, v in props.items()}
        required = list(props)
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema.update({"properties": props, "required": required, "additionalProperties": False})
    return schema


def record_fields(tp: Any) -> list[tuple[str, Any, bool, str]]:
    """``(name, type, required, description)`` for a dataclass, TypedDict or pydantic model."""
    if is_pydantic(tp):
        return [(name, f.annotation, f.is_required(), f.description or "")
                for name, f in tp.model_fields.items()]
    hints = typing.get_type_hints(tp, include_extras=True)
    if is_typeddict(tp):
        return [(name, hints[name], name in tp.__required_keys__, "") for name in hints]
    fields = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, hints.get(f.name, Any), required, str(f.metadata.get("description", ""))))
    return fields


def _record_schema(tp: Any, ctx: _Context) -> dict[str, Any]:
    if tp in ctx.seen:
        raise ctx.refuse(f"{tp.__name__} refers to itself; recursive types have no inline schema")
    ctx.seen.append(tp)
    try:
        doc, field_docs = parse_docstring(_own_doc(tp))
        props, required = {}, []
        for name, hint, req, desc in record_fields(tp):
            schema = type_schema(hint, ctx)
            desc = desc or field_docs.get(name, "")
            if desc and "description" not in schema:
                schema = {"description": desc, **schema}
            props[name] = schema
            if req:
                required.append(name)
        return object_schema(props, required, ctx.strict, doc)
    finally:
        ctx.seen.pop()


def _own_doc(tp: Any) -> str:
    """The class's own docstring, not the generated ``Name(a: int, ...)`` of dataclasses."""
    doc = tp.__dict__.get("__doc__") or ""
    if dataclasses.is_dataclass(tp) and doc.startswith(f"{tp.__name__}("):
        return ""
    return doc


# --------------------------------------------------------------------------- callables


@dataclasses.dataclass
class ToolSpec:
    """A callable's function-tool view: what the model is told and what calling needs."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool
    hints: dict[str, Any]  # parameter -> type hint, for converting validated JSON to Python values
    defaults: dict[str, Any]  # parameters that have defaults

    def to_param(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "description": self.description,
                                    "parameters": self.parameters}
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


def _underlying(fn: Any) -> Any:
    """The function a ``functools.partial`` (or a partial of one) calls: its name, docstring and
    type hints are the tool's; the partial's own are those of the ``partial`` class."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def callable_name(fn: Any) -> str:
    """A callable's tool name: a function's or method's ``__name__``, a partial's function's,
    else its type's (a callable object)."""
    target = _underlying(fn)
    return getattr(target, "__name__", None) or type(target).__name__


def _hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """Resolved type hints; an unresolvable string annotation is reported with its parameter."""
    fn = _underlying(fn)
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        pass
    target = inspect.unwrap(fn)
    namespace = dict(getattr(target, "__globals__", {}))
    try:
        namespace.update(inspect.getclosurevars(target).nonlocals)
    except (TypeError, ValueError):
        pass
    hints = {}
    for param, annotation in getattr(target, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # what get_type_hints does, per parameter
            except Exception as exc:
                raise ToolError(f"tool {name!r}: parameter {param!r}: can't resolve its type hint "
                                f"{annotation!r} ({exc})") from None
        hints[param] = annotation
    return hints


_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def build_spec(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None, strict: bool = False
) -> ToolSpec:
    """The ToolSpec of ``fn``; refuses signatures a model could not call (``*args``, positional-only)."""
    name = name or callable_name(fn)
    if not _NAME.match(name):
        raise ToolError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"tool {name!r}: can't read its signature ({exc})") from None
    hints = _hints(fn, name)
    doc, param_docs = parse_docstring(inspect.getdoc(_underlying(fn)))
    props: dict[str, dict[str, Any]] = {}
    required: list[str] = []
    used: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL or p.kind is p.VAR_KEYWORD:
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise ToolError(f"tool {name!r}: parameter {star}{p.name} can't be a tool parameter; "
                            "name each parameter the model may pass")
        if p.kind is p.POSITIONAL_ONLY:
            raise ToolError(f"tool {name!r}: parameter {p.name!r} is positional-only; "
                            "tool arguments are passed by name")
        hint = hints.get(p.name, Any)
        schema = type_schema(hint, _Context(name, p.name, strict))
        desc = param_docs.get(p.name)
        if desc and "description" not in schema:
            schema = {"description": desc, **schema}
        if p.default is p.empty:
            required.append(p.name)
        else:
            defaults[p.name] = p.default
            shown = p.default.value if isinstance(p.default, enum.Enum) else p.default
            if not strict and _json_type(shown) is not None:
                schema = {**schema, "default": shown}
        props[p.name] = schema
        used[p.name] = hint
    parameters = object_schema(props, required, strict)
    return ToolSpec(name, description if description is not None else doc, parameters, strict, used, defaults)


def allows_none(tp: Any) -> bool:
    """Whether a type hint itself accepts None (so strict mode's null is a value, not "default")."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return allows_none(typing.get_args(tp)[0])
    if tp in (None, _NONE, Any, object, inspect.Parameter.empty):
        return True
    if origin in (typing.Union, types.UnionType, typing.Literal):
        return any(a is None or a is _NONE for a in typing.get_args(tp))
    return False
