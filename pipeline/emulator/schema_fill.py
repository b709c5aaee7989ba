"""A JSON value that satisfies a (structured-outputs style) JSON schema, and one that does not.

Covers what structured outputs allow: objects, arrays, scalars, string enums, const, anyOf/oneOf/allOf,
local $ref to $defs/definitions (recursive ones too), nullable type lists, integer vs number with
bounds and multipleOf, string formats and lengths, minItems/maxItems. Every listed property is filled,
so `required` is always satisfied; a nullable value is null now and then (one in four), so a client's
nullable columns see nulls. Not covered: `pattern` (a generated string may not match it).

`violating_value` is what the `schema` fault answers: valid JSON the schema refuses.
"""

from __future__ import annotations

import math
import random
from typing import Any

_MAX_DEPTH = 8
# From this depth arrays take only their minItems and nullable values are null: recursive schemas end.
_SHALLOW_DEPTH = 4
_NULL_SHARE = 0.25
_WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "maple", "harbor", "lantern"]
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/item",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
# A value of each JSON type, in the order a wrong-typed value is picked from.
_WRONG_TYPED: tuple[tuple[str, Any], ...] = (
    ("string", "not the expected type"), ("integer", 7), ("boolean", True), ("array", []), ("object", {}))


def value_for_schema(schema: dict[str, Any], seed: int) -> Any:
    """A deterministic value valid under `schema` (for the features listed above)."""
    return _Filler(schema, random.Random(seed)).value(schema, 0)


def violating_value(schema: dict[str, Any], seed: int) -> Any:
    """A deterministic value `schema` refuses: the valid value with a required property left out, a property
    of a wrong type, or a string enum's property given a value not in its list (picked by seed among the
    ways this schema allows); a wrong-typed value when the root is no object with properties."""
    filler = _Filler(schema, random.Random(seed))
    root = filler.resolve(schema)
    value = filler.value(schema, 0)
    if not isinstance(value, dict) or not isinstance(root.get("properties"), dict):
        return _wrong_typed(_types_of(root) or {"object"})
    ways = _violations(filler, root, value)
    if not ways:
        return _wrong_typed({"object"})
    how, name = random.Random(seed ^ 0x5EED).choice(ways)
    spoiled = dict(value)
    if how == "missing":
        del spoiled[name]
    elif how == "enum":
        spoiled[name] = _outside(filler.resolve(root["properties"][name])["enum"])
    else:
        spoiled[name] = _wrong_typed(_types_of(filler.resolve(root["properties"][name])) or set())
    return spoiled


def _violations(filler: _Filler, root: dict[str, Any], value: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (way, property) that certainly breaks the schema: a required one missing, a typed one
    wrong-typed, a string enum's value outside its list."""
    ways = [("missing", name) for name in root.get("required") or [] if name in value]
    for name, sub in root["properties"].items():
        resolved = filler.resolve(sub) if isinstance(sub, dict) else {}
        enum = resolved.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(item, str) for item in enum):
            ways.append(("enum", name))
        elif _types_of(resolved):
            ways.append(("type", name))
    return ways


def _types_of(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema allows by its `type` (None: it does not say)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return None


def _wrong_typed(allowed: set[str]) -> Any:
    """A value of a JSON type `allowed` refuses (an integer is a number too)."""
    for kind, value in _WRONG_TYPED:
        if kind not in allowed and not (kind == "integer" and "number" in allowed):
            return value
    return None  # every type but null allowed: null is the one left


def _outside(enum: list[str]) -> str:
    candidate = "not_" + enum[0]
    while candidate in enum:
        candidate += "_x"
    return candidate


class _Filler:
    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        if schema.get("allOf"):
            return self.value(self._merged(schema["allOf"]), depth + 1)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(self._option(schema[key], depth), depth + 1)
        types = _types_of(schema) or set()
        if "null" in types and self._null_now(depth):
            return None
        return self._typed(schema, _main_type(schema), depth)

    def _null_now(self, depth: int) -> bool:
        return depth >= _SHALLOW_DEPTH or self.rng.random() < _NULL_SHARE

    def _option(self, options: list[Any], depth: int) -> Any:
        """A non-null option, or (now and then, and always deep down) the null one if there is one."""
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        if nulls and self._null_now(depth):
            return nulls[0]
        return _first_non_null(options)

    def _merged(self, parts: list[Any]) -> dict[str, Any]:
        """allOf as one schema: properties and required lists united, other keys from the last part."""
        merged: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        required: list[str] = []
        for part in parts:
            resolved = self.resolve(part) if isinstance(part, dict) else {}
            properties.update(resolved.get("properties") or {})
            required += [n for n in resolved.get("required") or [] if n not in required]
            merged.update({k: v for k, v in resolved.items() if k not in ("properties", "required")})
        if properties:
            merged.update(properties=properties, required=required)
        return merged

    def _typed(self, schema: dict[str, Any], kind: str, depth: int) -> Any:
        if kind == "object":
            props = schema.get("properties") or {}
            names = list(props) + [n for n in schema.get("required", []) if n not in props]
            return {name: self.value(props.get(name, {}), depth + 1) for name in names}
        if kind == "array":
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        least = int(schema.get("minItems", 0))
        count = least if depth >= _SHALLOW_DEPTH else max(least, 1)
        count = min(count, int(schema.get("maxItems", count)))
        return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]

    def _number(self, schema: dict[str, Any], kind: str) -> int | float:
        low, high = _range(schema, kind)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(low / step), math.floor(high / step)
            multiple = step * self.rng.randint(first, max(first, last))
            return int(multiple) if kind == "integer" else multiple
        if kind == "integer":
            return self.rng.randint(int(low), max(int(low), int(high)))
        value = low + (high - low) * (0.1 + 0.8 * self.rng.random())
        rounded = round(value, 3)
        return rounded if low < rounded < high else value

    def _string(self, schema: dict[str, Any]) -> str:
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        text = " ".join(self.rng.choice(_WORDS) for _ in range(3))
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (#, #/$defs/X, #/definitions/X) to their target."""
        seen = 0
        while "$ref" in schema and seen < _MAX_DEPTH:
            target: Any = self.root
            for part in str(schema["$ref"]).lstrip("#/").split("/"):
                target = target.get(part, {}) if part and isinstance(target, dict) else target
            schema = target if isinstance(target, dict) else {}
            seen += 1
        return schema


def _bound(schema: dict[str, Any], name: str) -> float | None:
    value = schema.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _range(schema: dict[str, Any], kind: str) -> tuple[float, float]:
    """The inclusive range a value is drawn from (whole numbers for integers); 100 wide when open."""
    low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
    above, below = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    nudge = 1.0 if kind == "integer" else 1e-6
    if above is not None:
        low = max(low, above + nudge) if low is not None else above + nudge
    if below is not None:
        high = min(high, below - nudge) if high is not None else below - nudge
    if low is None:
        low = high - 100 if high is not None else 0.0
    if high is None:
        high = low + 100
    if kind == "integer":
        return float(math.ceil(low)), float(math.floor(high))
    return low, high


def _main_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        return "object" if "properties" in schema else "string"
    return str(kind)


def _first_non_null(options: list[Any]) -> Any:
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0]
