"""Structured outputs as typed columns: the job's JSON schema becomes Arrow columns, and every answer is
validated against it before it may become a success.

The mapping is decided once, at validate time, from the schema alone:

    string (any format)        string        integer              int64
    string enum                string        number               float64
    boolean                    bool          array of T           list<T>
    object with properties     struct        ["T", "null"], anyOf [T, null], not in `required`: nullable

Each top-level property is one column named like it. What has no single Arrow type (a union of two real
types, an object without properties, an array without `items`, a $ref cycle...) is refused with one line
naming the construct, as is a property named like a built-in column. Answers are checked with
`jsonschema` (the schema's own semantics: enums, required, types, nested), not by the mapping: a value the
schema allows always fits its column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

from pipeline.errors import SchemaMismatchError, SpecError
from pipeline.spec import json_schema_format

MAX_DEPTH = 16
RAW_KEPT = 4000  # characters of a mismatching answer kept in its failure row


@dataclass(frozen=True)
class OutputSchema:
    name: str
    schema: dict[str, Any]
    fields: tuple[pa.Field, ...]

    @cached_property
    def validator(self) -> Any:
        return _validator_class(self.schema)(self.schema)


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the schema's own draft (2020-12 when it names none). Imported here, not at the top:
    jsonschema costs ~35 ms, which every run of a job without a schema would pay at start-up."""
    import jsonschema

    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def output_schema_of(params: dict[str, Any], endpoint: str, reserved: Iterable[str],
                     where: str) -> OutputSchema | None:
    """The typed columns a json_schema answer gives (None: not a json_schema answer); SpecError when the
    schema cannot be columns."""
    key, holder = json_schema_format(params, endpoint)
    if holder is None:
        return None
    schema = holder.get("schema")
    name = holder.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}: {key}.name: required, a name for the schema (letters, digits, _ and -)")
    if not isinstance(schema, dict):
        raise SpecError(f"{where}: {key}.schema: required, the JSON schema of the answer (inline, or "
                        "schema_file = \"path.json\")")
    mapper = _Mapper(schema, f"{where}: {key}.schema")
    from jsonschema import SchemaError

    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        raise SpecError(f"{where}: {key}.schema: not a valid JSON schema ({exc.message})") from None
    fields = mapper.top_level(set(reserved))
    return OutputSchema(name, schema, tuple(fields))


class _Mapper:
    """JSON Schema -> Arrow types; SpecError naming the path of what cannot be mapped."""

    def __init__(self, root: dict[str, Any], where: str) -> None:
        self.root = root
        self.where = where

    def refuse(self, path: str, problem: str) -> SpecError:
        return SpecError(f"{self.where}{path}: {problem}")

    def top_level(self, reserved: set[str]) -> list[pa.Field]:
        root, _ = self.resolve(self.root, "", frozenset())
        if root.get("type") != "object" or not isinstance(root.get("properties"), dict) or not root["properties"]:
            raise self.refuse("", "must be an object with properties: each property becomes a column")
        fields = []
        for name, sub in root["properties"].items():
            if name in reserved:
                raise self.refuse(f".properties.{name}", f"clashes with the built-in column {name!r}; rename "
                                  "the property")
            # Every column is nullable in Arrow: an optional property may be absent, and the columns of a
            # failed or incomplete answer are null.
            fields.append(pa.field(name, self.arrow(sub, f".properties.{name}", 1, frozenset())[0]))
        return fields

    def resolve(self, schema: Any, path: str, seen: frozenset[str]) -> tuple[dict[str, Any], frozenset[str]]:
        """The schema a local $ref points at (and the refs followed to it: a cycle has no column type)."""
        if not isinstance(schema, dict):
            raise self.refuse(path, f"a schema must be an object, got {schema!r}")
        ref = schema.get("$ref")
        if ref is None:
            return schema, seen
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise self.refuse(path, f"$ref {ref!r}: only local references (#/$defs/...) can be columns")
        if ref in seen:
            raise self.refuse(path, f"$ref {ref!r} refers to itself: a recursive schema has no column type")
        target: Any = self.root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            raise self.refuse(path, f"$ref {ref!r} points at nothing")
        return self.resolve(target, path, seen | {ref})

    def arrow(self, schema: Any, path: str, depth: int, seen: frozenset[str]) -> tuple[pa.DataType, bool]:
        """The Arrow type of a (sub)schema and whether null is allowed."""
        if depth > MAX_DEPTH:
            raise self.refuse(path, f"nested deeper than {MAX_DEPTH} levels")
        schema, seen = self.resolve(schema, path, seen)
        union = next((key for key in ("anyOf", "oneOf") if key in schema), None)
        if union is not None:
            return self.union(schema[union], f"{path}.{union}", depth, seen)
        if "allOf" in schema:
            raise self.refuse(f"{path}.allOf", "allOf cannot be a column; merge its schemas into one")
        kinds = _declared_type(schema)
        if isinstance(kinds, list):
            real = [k for k in kinds if k != "null"]
            if len(real) != 1:
                raise self.refuse(f"{path}.type", f"{kinds}: a column has one type; use one type (and null)")
            return self.single(real[0], schema, path, depth, seen)[0], True
        if not isinstance(kinds, str):
            raise self.refuse(path, "no type: say what the value is (string, integer, number, boolean, "
                              "array, object)")
        return self.single(kinds, schema, path, depth, seen)

    def union(self, options: Any, path: str, depth: int, seen: frozenset[str]) -> tuple[pa.DataType, bool]:
        if not isinstance(options, list) or not options:
            raise self.refuse(path, "must be a non-empty list of schemas")
        nullable = any(isinstance(o, dict) and o.get("type") == "null" for o in options)
        real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(real) != 1:
            raise self.refuse(path, "a union of several types cannot be one column; use one type (and null)")
        arrow, inner_null = self.arrow(real[0], f"{path}[0]", depth, seen)
        return arrow, nullable or inner_null

    def single(self, kind: str, schema: dict[str, Any], path: str, depth: int,
               seen: frozenset[str]) -> tuple[pa.DataType, bool]:
        scalar = _SCALARS.get(kind)
        if scalar is not None:
            return scalar, False
        if kind == "array":
            items = schema.get("items")
            if not isinstance(items, dict):
                raise self.refuse(f"{path}.items", "an array needs one `items` schema to be a list column")
            return pa.list_(pa.field("item", self.arrow(items, f"{path}.items", depth + 1, seen)[0])), False
        if kind == "object":
            properties = schema.get("properties")
            if not isinstance(properties, dict) or not properties:
                raise self.refuse(path, "an object without properties (a free-form map) cannot be a struct "
                                  "column; list its properties")
            return pa.struct([pa.field(name, self.arrow(sub, f"{path}.properties.{name}", depth + 1, seen)[0])
                              for name, sub in properties.items()]), False
        if kind == "null":
            raise self.refuse(f"{path}.type", "a property that is always null is no column; remove it")
        raise self.refuse(f"{path}.type", f"unknown type {kind!r}")


_SCALARS: dict[str, pa.DataType] = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
                                    "boolean": pa.bool_()}


def _declared_type(schema: dict[str, Any]) -> Any:
    """`type`, or the type an enum's or a const's values all have."""
    if "type" in schema:
        return schema["type"]
    if "enum" in schema:
        return _enum_type(schema["enum"])
    if "const" in schema:
        return _json_type(schema["const"])
    return None


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _enum_type(values: Any) -> str | list[str] | None:
    kinds = sorted({_json_type(v) or "null" for v in values}) if isinstance(values, list) else []
    return kinds[0] if len(kinds) == 1 else kinds or None


def typed_columns(output: OutputSchema, content: str | None) -> dict[str, Any]:
    """The answer's properties as column values, once it is JSON that matches the schema; else
    SchemaMismatchError saying what is wrong, the raw content kept in its detail."""
    if content is None:
        raise SchemaMismatchError("the answer has no content to match the output schema", code="schema_mismatch")
    try:
        value = json.loads(content)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SchemaMismatchError(f"the answer is not JSON ({exc}); the output schema was not met",
                                  code="schema_mismatch", detail=content[:RAW_KEPT]) from None
    error = next(iter(sorted(output.validator.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(the whole answer)"
        raise SchemaMismatchError(f"the answer does not match the output schema {output.name!r} at {where}: "
                                  f"{_short(error.message)}", code="schema_mismatch", detail=content[:RAW_KEPT])
    return {field.name: _for_column(value.get(field.name), field.type) for field in output.fields}


def _for_column(value: Any, arrow: pa.DataType) -> Any:
    """JSON allows 3 for a number; the float64 column wants 3.0 (Arrow would take it, but be exact)."""
    if value is None:
        return None
    if pa.types.is_floating(arrow) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if pa.types.is_list(arrow) and isinstance(value, list):
        return [_for_column(v, arrow.value_type) for v in value]
    if pa.types.is_struct(arrow) and isinstance(value, dict):
        return {f.name: _for_column(value.get(f.name), f.type) for f in arrow}
    return value


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "…"
