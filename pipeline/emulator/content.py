"""Deterministic content: the same request always gets the same answer.

Vectors and JSON answers live here; prose, images, audio and transcripts in
their own modules, re-exported so callers need one import. Everything is
seeded from a hash of the input, so a test can recompute what the client
should have received.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pipeline.emulator.audio import SPEECH_CONTENT_TYPES, speech_audio
from pipeline.emulator.png import png_bytes, png_size
from pipeline.emulator.prose import fit_to_tokens, generated_text, seed_of, words_for
from pipeline.emulator.schema_fill import value_for_schema, violating_value
from pipeline.emulator.transcripts import Transcript, transcript_for, words_for_pitch

__all__ = [
    "SPEECH_CONTENT_TYPES",
    "Transcript",
    "default_dimensions",
    "embedding_vector",
    "fit_to_tokens",
    "generated_text",
    "json_answer",
    "json_text",
    "png_bytes",
    "png_size",
    "seed_of",
    "speech_audio",
    "text_format",
    "transcript_for",
    "value_for_schema",
    "violating_value",
    "words_for",
    "words_for_pitch",
]


def default_dimensions(model: str) -> int:
    """The native vector length for a model or deployment name (1536 if unknown)."""
    return 3072 if "3-large" in model.lower() else 1536


def embedding_vector(text: str, dims: int) -> np.ndarray:
    """Unit-norm float32 vector for `text`.

    Shorter vectors are prefixes of longer ones renormalised, as OpenAI's
    `dimensions` shortening behaves.
    """
    rng = np.random.default_rng(seed_of("embedding", text))
    vector = rng.standard_normal(dims, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm else vector


def json_answer(seed: int, response_format: dict[str, Any]) -> str:
    """The text of a chat JSON-mode answer (`response_format`): an object, shaped by the schema if one is given."""
    return json_text(seed, text_format(response_format))


def text_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """A chat `response_format` in the Responses API's flat shape: {"type": "json_schema", "name", "schema", ...}."""
    if response_format.get("type") == "json_schema":
        return {**(response_format.get("json_schema") or {}), "type": "json_schema"}
    return response_format


def json_text(seed: int, fmt: dict[str, Any], spoil: str | None = None) -> str:
    """The text of a JSON answer in format `fmt` (flat, as `text_format` gives it): an object, conforming to
    fmt["schema"] when there is one. `spoil` is an answer fault: "schema" gives valid JSON the schema refuses
    (json_object: an array, not an object), "badjson" text that is not JSON (the answer cut in half)."""
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    value: Any
    if isinstance(schema, dict) and schema:
        value = violating_value(schema, seed) if spoil == "schema" else value_for_schema(schema, seed)
    else:
        text, _ = generated_text(seed, None)
        value = [text] if spoil == "schema" else {"answer": text}
    rendered = json.dumps(value)
    # Any proper prefix of a JSON object or array is not JSON: the value only closes with its last character.
    return rendered[: max(1, len(rendered) // 2)] if spoil == "badjson" else rendered
