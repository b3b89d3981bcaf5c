"""Validate payloads against the Assistants subset of the OpenAI spec with jsonschema.

The spec file is a verbatim copy of ``shared/openai-openapi/assistants-subset.yaml`` kept in
``tests/fixtures/spec/`` so any clone can run these tests. It is OpenAPI 3.1 (JSON Schema 2020-12), but some
schemas still carry the 3.0 ``nullable: true`` keyword, which JSON Schema ignores; those are
rewritten to ``anyOf [..., null]`` on load, including the ``allOf: [$ref, {nullable: true}]`` form.
One further, deliberate relaxation: list pages may have ``first_id``/``last_id`` null when
``data`` is empty (what the API sends; the spec says string).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "spec" / "assistants-subset.yaml"
URI = "urn:assistants-subset"
LIST_SCHEMAS = ("ListAssistantsResponse", "ListMessagesResponse", "ListRunsResponse",
                "ListRunStepsResponse")
EVENT_GROUPS = ("ThreadStreamEvent", "RunStreamEvent", "RunStepStreamEvent", "MessageStreamEvent",
                "ErrorEvent", "DoneEvent")


def _only_nullable(node: Any) -> bool:
    return isinstance(node, dict) and node.get("nullable") is True and not (
        set(node) - {"nullable", "description"}
    )


def _fix_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_fix_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    nullable = node.pop("nullable", False) is True
    parts = node.get("allOf")
    if isinstance(parts, list) and any(_only_nullable(p) for p in parts):
        node["allOf"] = [p for p in parts if not _only_nullable(p)]  # allOf: [$ref, {nullable}]
        nullable = True
    node = {k: _fix_nullable(v) for k, v in node.items()}
    return {"anyOf": [node, {"type": "null"}]} if nullable else node


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        raise FileNotFoundError(
            f"the Assistants spec subset is missing at {SPEC_PATH}; copy it from "
            "shared/openai-openapi/assistants-subset.yaml"
        )
    document = _fix_nullable(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")))
    schemas = document["components"]["schemas"]
    for name in LIST_SCHEMAS:
        for key in ("first_id", "last_id"):
            schemas[name]["properties"][key] = {"type": ["string", "null"]}
    return document


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(URI, Resource(contents=spec(), specification=DRAFT202012))


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in spec()["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the spec subset")
    ref = {"$ref": f"{URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_registry())


def validate(schema_name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` (with the path of the fault) unless ``instance`` fits."""
    validator(schema_name).validate(instance)


@functools.lru_cache(maxsize=1)
def event_pointers() -> dict[str, str]:
    """Event name -> JSON pointer (in the spec) of the schema of its ``data``."""
    schemas = spec()["components"]["schemas"]
    out: dict[str, str] = {}
    for group in EVENT_GROUPS:
        if "oneOf" in schemas[group]:
            members = [(f"/components/schemas/{group}/oneOf/{i}", m)
                       for i, m in enumerate(schemas[group]["oneOf"])]
        else:
            members = [(f"/components/schemas/{group}", schemas[group])]
        for pointer, member in members:
            [name] = member["properties"]["event"]["enum"]
            out[name] = f"{pointer}/properties/data"
    return out


@functools.cache
def _event_validator(event: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{URI}#{event_pointers()[event]}"}, registry=_registry())


def validate_event(event: str, data: Any) -> None:
    """Validate one stream event: a known name, and data of the spec's shape for it (then the
    whole event against the spec's ``AssistantStreamEvent`` union)."""
    if event not in event_pointers():
        raise AssertionError(f"event {event!r} is not an Assistants stream event")
    _event_validator(event).validate(data)
    validator("AssistantStreamEvent").validate({"event": event, "data": data})


# -- the packaged request schemas -------------------------------------------------------------
# The server validates request bodies and query parameters against the spec at runtime, where
# pyyaml is not a dependency, so the part it needs is extracted into jupyter_runs/_spec.json:
# `python -m tests.openapi_spec` writes it and test_server_security.py checks it is current.

PACKAGED_SPEC = Path(__file__).resolve().parents[1] / "jupyter_runs" / "_spec.json"
_DROP = ("description", "title", "example", "examples", "deprecated")
_PREFIX = "#/components/schemas/"


def _compact(node: Any, *, names: bool = False) -> Any:
    """``node`` without documentation keywords, refs pointing at ``#/$defs/``. ``names``: ``node``
    maps property names to schemas (so a property called ``description`` stays)."""
    if isinstance(node, list):
        return [_compact(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not names and (key in _DROP or key.startswith("x-")):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = "#/$defs/" + value.removeprefix(_PREFIX)
        else:
            out[key] = _compact(value, names=not names and key in ("properties", "patternProperties"))
    return out


#: Our thread-lifecycle extensions (no spec entry): no query, and the engine checks their bodies.
_BODY_CHECKED_BY_ENGINE = ("rewind_thread", "fork_thread")


def request_schemas() -> dict[str, Any]:
    """Per operation name, the body schema's name and the query parameters' schemas, plus every
    schema a body schema refers to (``$defs``)."""
    from jupyter_runs.backends import OPERATIONS

    document = spec()
    schemas = document["components"]["schemas"]
    operations: dict[str, Any] = {}
    for op in OPERATIONS.values():
        if op.name in _BODY_CHECKED_BY_ENGINE:
            operations[op.name] = {"body": None, "query": {}}
            continue
        # list_threads is our extension (no spec entry): it pages like list_assistants.
        path, method = (("/assistants", "get") if op.name == "list_threads"
                        else (op.path, op.method.lower()))
        entry = document["paths"][path][method]
        body = (entry.get("requestBody") or {}).get("content", {}).get("application/json", {})
        query = {p["name"]: _compact(p["schema"]) for p in entry.get("parameters", ())
                 if p.get("in") == "query"}
        if op.name == "list_threads":  # our name filters (thread_names.py), answered by an index
            query.update(name={"type": "string"}, name_prefix={"type": "string"})
        operations[op.name] = {"body": body["schema"]["$ref"].removeprefix(_PREFIX) if body else None,
                               "query": query}
    needed: set[str] = set()
    todo = [o["body"] for o in operations.values() if o["body"]]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        text = json.dumps(schemas[name])
        todo += [ref.split('"')[0] for ref in text.split(f'"$ref": "{_PREFIX}')[1:]]
    return {"operations": operations,
            "$defs": {name: _compact(schemas[name]) for name in sorted(needed)}}


def packaged_text() -> str:
    return json.dumps(request_schemas(), sort_keys=True, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    PACKAGED_SPEC.write_text(packaged_text(), encoding="utf-8")
    print(f"wrote {PACKAGED_SPEC} ({PACKAGED_SPEC.stat().st_size:,} bytes)")
