"""Values for JSON schemas (structured outputs), valid or violating by design, checked with jsonschema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from pipeline.emulator.content import json_text
from pipeline.emulator.schema_fill import value_for_schema, violating_value

SEEDS = range(40)

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 40},
        "kind": {"type": "string", "enum": ["cat", "dog", "bird"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
        "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "nickname": {"type": ["string", "null"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string", "format": "uuid"}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1, "maxItems": 3},
        "owner": {"anyOf": [{"$ref": "#/$defs/owner"}, {"type": "null"}]},
    },
    "required": ["name", "kind", "age", "score", "nickname", "address", "tags", "owner"],
    "additionalProperties": False,
    "$defs": {"owner": {"type": "object", "properties": {"since": {"type": "string", "format": "date"}},
                        "required": ["since"], "additionalProperties": False}},
}

TREE = {  # recursive, as structured outputs allow: it must end
    "type": "object",
    "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["label", "children"],
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "person": PERSON,
    "tree": TREE,
    "negative_bounds": {"type": "object", "required": ["low", "cold"], "properties": {
        "low": {"type": "integer", "maximum": -5}, "cold": {"type": "number", "maximum": -40}}},
    "multiples": {"type": "object", "required": ["even"], "properties": {
        "even": {"type": "integer", "minimum": 1, "maximum": 99, "multipleOf": 2}}},
    "all_of": {"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]},
                         {"properties": {"b": {"const": "fixed"}}, "required": ["b"]}]},
    "array_of_objects": {"type": "object", "required": ["rows"], "properties": {"rows": {
        "type": "array", "minItems": 2, "items": {"type": "object", "required": ["n"],
                                                  "properties": {"n": {"type": "integer"}}}}}},
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_values_are_valid_for_every_seed(name: str) -> None:
    schema = SCHEMAS[name]
    for seed in SEEDS:
        value = value_for_schema(schema, seed)
        jsonschema.validate(value, schema)
        assert value == value_for_schema(schema, seed)  # deterministic


def test_integer_and_number_are_told_apart() -> None:
    values = [value_for_schema(PERSON, seed) for seed in SEEDS]
    assert all(isinstance(v["age"], int) and not isinstance(v["age"], bool) for v in values)
    assert all(isinstance(v["score"], float) for v in values)


def test_nullable_values_are_sometimes_null_sometimes_not() -> None:
    values = [value_for_schema(PERSON, seed) for seed in SEEDS]
    assert {v["nickname"] is None for v in values} == {True, False}
    assert {v["owner"] is None for v in values} == {True, False}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_violating_values_are_refused_for_every_seed(name: str) -> None:
    schema = SCHEMAS[name]
    for seed in SEEDS:
        value = violating_value(schema, seed)
        json.dumps(value)  # still JSON
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


def test_violations_take_each_way_by_seed() -> None:
    """A required property missing, a wrong type, an enum value not in the list: all three occur."""
    ways = set()
    for seed in SEEDS:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(PERSON).iter_errors(
            violating_value(PERSON, seed)))
        assert error is not None
        ways.add(error.validator)
    assert {"required", "type", "enum"} <= ways


def test_json_text_faults() -> None:
    fmt = {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}
    jsonschema.validate(json.loads(json_text(3, fmt)), PERSON)
    with pytest.raises(ValueError):
        json.loads(json_text(3, fmt, "badjson"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(json_text(3, fmt, "schema")), PERSON)
    assert isinstance(json.loads(json_text(3, {"type": "json_object"})), dict)
    assert not isinstance(json.loads(json_text(3, {"type": "json_object"}, "schema")), dict)
