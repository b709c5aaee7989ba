"""A JSON value that satisfies a (structured-outputs style) JSON schema.

Covers what structured outputs allow: objects, arrays, scalars, enum, const,
anyOf/oneOf/allOf, local $ref to $defs/definitions, nullable type lists,
numeric bounds and minItems/maxItems. Every listed property is filled, so
`required` is always satisfied.
"""

from __future__ import annotations

import random
from typing import Any

_MAX_DEPTH = 8
_WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "maple", "harbor", "lantern"]
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/item",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def value_for_schema(schema: dict[str, Any], seed: int) -> Any:
    """A deterministic value valid under `schema` (for the features listed above)."""
    return _Filler(schema, random.Random(seed)).value(schema, 0)


class _Filler:
    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                return self.value(_first_non_null(schema[key]), depth + 1)
        return self._typed(schema, _main_type(schema), depth)

    def _typed(self, schema: dict[str, Any], kind: str, depth: int) -> Any:
        if kind == "object":
            props = schema.get("properties") or {}
            names = list(props) + [n for n in schema.get("required", []) if n not in props]
            return {name: self.value(props.get(name, {}), depth + 1) for name in names}
        if kind == "array":
            count = max(int(schema.get("minItems", 1)), 1)
            count = min(count, int(schema.get("maxItems", count)))
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _number(self, schema: dict[str, Any], kind: str) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
        if kind == "integer":
            low_i = int(low) + (1 if "exclusiveMinimum" in schema else 0)
            high_i = int(high) - (1 if "exclusiveMaximum" in schema else 0)
            return self.rng.randint(low_i, max(low_i, high_i))
        return round(low + (high - low) * (0.1 + 0.8 * self.rng.random()), 3)

    def _string(self, schema: dict[str, Any]) -> str:
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        text = " ".join(self.rng.choice(_WORDS) for _ in range(3))
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (#/$defs/X, #/definitions/X) to their target."""
        seen = 0
        while "$ref" in schema and seen < _MAX_DEPTH:
            target: Any = self.root
            for part in str(schema["$ref"]).lstrip("#/").split("/"):
                target = target.get(part, {}) if part and isinstance(target, dict) else target
            schema = target if isinstance(target, dict) else {}
            seen += 1
        return schema


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
