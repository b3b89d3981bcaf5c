"""Callables -> function tool schemas: each type mapping, each docstring style, strict mode, refusals.

Every generated schema is checked against JSON Schema's Draft 2020-12 metaschema (jsonschema is a
test dependency only), and sample arguments are checked with jsonschema too, so our own validator
and the schema agree with a reference implementation.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any, Literal, Optional, TypedDict, Union

import jsonschema
import pydantic
import pytest

import jupyter_runs as jr
from jupyter_runs.errors import ToolError
from jupyter_runs.tools import to_tool_params, tool_param, tool_spec
from jupyter_runs.tools.schema import parse_docstring


def params_of(fn: Any, strict: bool = False) -> dict[str, Any]:
    schema = tool_spec(fn, strict=strict).parameters
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def prop(fn: Any, name: str = "x", strict: bool = False) -> dict[str, Any]:
    return params_of(fn, strict)["properties"][name]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    """A point on the map.

    Args:
        lat: Latitude in degrees.
    """

    lat: float
    lon: float = 0.0


class Address(TypedDict):
    street: str
    number: int


class Order(pydantic.BaseModel):
    item: str = pydantic.Field(description="What to order.")
    qty: int = 1


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045 - the typing spelling is the point
        (int | None, {"type": ["integer", "null"]}),
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
        (Literal["north", "south"], {"type": "string", "enum": ["north", "south"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Color, {"type": "string", "enum": ["red", "blue"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (set[str], {"type": "array", "items": {"type": "string"}}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (tuple[int, str], {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                           "minItems": 2, "maxItems": 2}),
        (tuple[float, ...], {"type": "array", "items": {"type": "number"}}),
        (Annotated[str, "The city name."], {"description": "The city name.", "type": "string"}),
        (Any, {}),
        (Point, {"type": "object", "description": "A point on the map.",
                 "properties": {"lat": {"description": "Latitude in degrees.", "type": "number"},
                                "lon": {"type": "number"}},
                 "required": ["lat"], "additionalProperties": False}),
        (Address, {"type": "object", "properties": {"street": {"type": "string"}, "number": {"type": "integer"}},
                   "required": ["street", "number"], "additionalProperties": False}),
        (Order, {"type": "object",
                 "properties": {"item": {"description": "What to order.", "type": "string"},
                                "qty": {"type": "integer"}},
                 "required": ["item"], "additionalProperties": False}),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v)[:30],
)
def test_type_hint_maps_to_schema(hint, expected):
    def fn(x): ...

    fn.__annotations__ = {"x": hint}
    assert prop(fn) == expected


def test_containers_of_records_nest_inline():
    def route(stops: list[Point]) -> None: ...

    items = prop(route, "stops")["items"]
    assert items["type"] == "object" and items["required"] == ["lat"]


def test_defaults_make_parameters_optional_and_are_shown():
    def load(region: str, limit: int = 10, unit: str | None = None) -> None:
        """Load."""

    schema = params_of(load)
    assert schema["required"] == ["region"]
    assert schema["properties"]["limit"] == {"type": "integer", "default": 10}
    assert schema["properties"]["unit"] == {"type": ["string", "null"], "default": None}
    assert schema["additionalProperties"] is False


def test_strict_mode_requires_everything_and_makes_optionals_nullable():
    @jr.tool(strict=True)
    def search(query: str, limit: int = 5, where: Point | None = None) -> None:
        """Search."""

    param = tool_param(search)
    assert param["function"]["strict"] is True
    schema = param["function"]["parameters"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["query", "limit", "where"]
    assert schema["properties"]["limit"] == {"type": ["integer", "null"]}
    nested = schema["properties"]["where"]
    assert nested["required"] == ["lat", "lon"] and nested["additionalProperties"] is False
    assert nested["properties"]["lon"]["type"] == ["number", "null"]
    jsonschema.validate({"query": "q", "limit": None, "where": None}, schema)


@pytest.mark.parametrize(("hint", "why"), [(dict[str, int], "free-form dicts"), (tuple[int, int], "fixed-length"),
                                           (Any, "type hint")])
def test_strict_mode_refuses_what_it_cannot_express(hint, why):
    def fn(x): ...

    fn.__annotations__ = {"x": hint}
    with pytest.raises(ToolError, match=why):
        tool_spec(fn, strict=True)


def test_var_args_are_refused_naming_function_and_parameter():
    def many(*values: int) -> None: ...

    def loose(a: int, **options: Any) -> None: ...

    with pytest.raises(ToolError, match=r"'many'.*\*values"):
        tool_param(many)
    with pytest.raises(ToolError, match=r"'loose'.*\*\*options"):
        tool_param(loose)


def test_positional_only_parameters_are_refused():
    def pos(a: int, /, b: int) -> None: ...

    with pytest.raises(ToolError, match=r"'pos'.*'a' is positional-only"):
        tool_param(pos)


class Opaque:
    """Not describable as JSON."""


@dataclasses.dataclass
class Node:
    children: list[Node]


def test_unknown_types_are_refused_with_the_parameter_named():
    def use(thing: Opaque) -> None: ...

    with pytest.raises(ToolError, match=r"'use': parameter 'thing'.*Opaque"):
        tool_param(use)


def test_unresolvable_hints_are_refused_with_the_parameter_named():
    def later(thing: NotDefinedAnywhere) -> None: ...  # noqa: F821

    with pytest.raises(ToolError, match=r"'later': parameter 'thing'.*NotDefinedAnywhere"):
        tool_param(later)


def test_classes_and_recursive_types_are_refused():
    def walk(root: Node) -> None: ...

    with pytest.raises(ToolError, match="refers to itself"):
        tool_param(walk)
    with pytest.raises(ToolError, match="not a function"):
        tool_param(Point)


def test_tool_decorator_overrides_name_and_description():
    @jr.tool(name="get_sales", description="Sales by region.", timeout=2, thread_safe=True)
    def load(region: str) -> str:
        """Ignored doc."""
        return region

    param = tool_param(load)["function"]
    assert (param["name"], param["description"]) == ("get_sales", "Sales by region.")
    assert load("x") == "x"  # still an ordinary function
    with pytest.raises(ToolError, match="1-64"):
        jr.tool(name="has space")(lambda: None)


def test_tool_dicts_and_callables_mix():
    def ping() -> str:
        return "pong"

    raw = {"type": "code_interpreter"}
    params = to_tool_params([raw, ping])
    assert params[0] == raw and params[1]["function"]["name"] == "ping"
    assert params[1]["function"]["parameters"] == {
        "type": "object", "properties": {}, "required": [], "additionalProperties": False}


GOOGLE = """Load the sales of one region.

More detail here.

Args:
    region (str): Which region to load.
        One of north or south.
    limit: How many rows.

Returns:
    The table.
"""

NUMPY = """Load the sales of one region.

More detail here.

Parameters
----------
region : str
    Which region to load.
    One of north or south.
limit : int, optional
    How many rows.

Returns
-------
DataFrame
"""

SPHINX = """Load the sales of one region.

More detail here.

:param str region: Which region to load.
    One of north or south.
:param limit: How many rows.
:returns: The table.
"""


@pytest.mark.parametrize("doc", [GOOGLE, NUMPY, SPHINX], ids=["google", "numpy", "sphinx"])
def test_docstring_styles_give_description_and_parameter_docs(doc):
    description, params = parse_docstring(doc)
    assert description == "Load the sales of one region.\n\nMore detail here."
    assert params == {"region": "Which region to load. One of north or south.", "limit": "How many rows."}


def test_plain_docstring_is_the_description():
    def plain(x: int) -> int:
        """Double a number.

        Works for negatives too.
        """
        return 2 * x

    fn = tool_param(plain)["function"]
    assert fn["description"] == "Double a number.\n\nWorks for negatives too."
    assert fn["parameters"]["properties"]["x"] == {"type": "integer"}


def test_docstring_parameter_docs_reach_the_schema_but_annotated_wins():
    def load(region: Annotated[str, "From Annotated."], limit: int = 3) -> None:
        """Load.

        Args:
            region: From the docstring.
            limit: How many rows.
        """

    props = params_of(load)["properties"]
    assert props["region"]["description"] == "From Annotated."
    assert props["limit"]["description"] == "How many rows."


def test_enum_default_is_shown_as_its_value():
    def paint(color: Color = Color.BLUE) -> None: ...

    assert prop(paint, "color") == {"type": "string", "enum": ["red", "blue"], "default": "blue"}


def shipping(dest: Point, items: list[Order], mode: Literal["air", "sea"] = "sea",
             note: Annotated[str | None, "Free text."] = None, dims: tuple[int, int] = (1, 1)) -> None:
    """Ship things."""


@pytest.mark.parametrize(
    "arguments",
    [
        {"dest": {"lat": 1.5}, "items": [{"item": "tea"}]},
        {"dest": {"lat": 1, "lon": 2}, "items": [], "mode": "air", "note": None, "dims": [2, 3]},
        {"dest": {"lat": 1.5}, "items": [{"item": "tea", "qty": 2.5}]},
        {"dest": {"lat": 1.5, "alt": 3}, "items": []},
        {"dest": {}, "items": [{"qty": 1}]},
        {"dest": {"lat": 1.5}, "items": [], "mode": "rail"},
        {"dest": {"lat": 1.5}, "items": [], "dims": [1, 2, 3]},
        {"dest": {"lat": True}, "items": "tea"},
        {"items": []},
    ],
)
def test_our_validator_agrees_with_jsonschema(arguments):
    from jupyter_runs.tools.validate import check_object

    schema = params_of(shipping)
    errors: list[str] = []
    check_object(arguments, schema, "", errors)
    reference = list(jsonschema.Draft202012Validator(schema).iter_errors(arguments))
    assert bool(errors) == bool(reference), (errors, [e.message for e in reference])
