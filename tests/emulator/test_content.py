"""Deterministic content: vectors, text, JSON, PNG, speech audio (transcripts: test_transcripts.py)."""

from __future__ import annotations

import base64
import io
import json
import wave

import numpy as np
import pytest

from pipeline.emulator.content import (
    default_dimensions,
    embedding_vector,
    fit_to_tokens,
    generated_text,
    json_answer,
    png_bytes,
    png_size,
    speech_audio,
    value_for_schema,
)
from pipeline.tokens import estimate_text_tokens


def test_embedding_is_deterministic_unit_float32() -> None:
    first, again, other = embedding_vector("hello", 64), embedding_vector("hello", 64), embedding_vector("hi", 64)
    assert first.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert float(np.linalg.norm(first)) == pytest.approx(1.0, abs=1e-6)


def test_shorter_vectors_are_renormalised_prefixes() -> None:
    full, short = embedding_vector("text", 1536), embedding_vector("text", 256)
    assert np.allclose(short, full[:256] / np.linalg.norm(full[:256]), atol=1e-6)


def test_base64_round_trip_as_the_sdk_decodes() -> None:
    vector = embedding_vector("round trip", 1536)
    encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode()
    assert np.array_equal(np.frombuffer(base64.b64decode(encoded), dtype="float32"), vector)


@pytest.mark.parametrize(
    ("model", "dims"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)],
)
def test_default_dimensions(model: str, dims: int) -> None:
    assert default_dimensions(model) == dims


def test_text_is_deterministic_and_cut_to_max_tokens() -> None:
    text, reason = generated_text(42, None)
    assert (text, reason) == generated_text(42, None)
    assert reason == "stop" and text.endswith(".")
    cut, reason = generated_text(42, 5)
    assert reason == "length"
    assert estimate_text_tokens(cut) <= 5
    assert text.startswith(cut)


def test_fit_to_tokens_keeps_short_text() -> None:
    assert fit_to_tokens("short answer", 100) == ("short answer", "stop")


def test_json_object_mode_gives_an_object() -> None:
    assert isinstance(json.loads(json_answer(1, {"type": "json_object"})), dict)


def test_json_schema_mode_fills_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
            "maybe": {"type": ["string", "null"]},
            "address": {"$ref": "#/$defs/address"},
        },
        "required": ["name", "age", "score", "tags", "kind", "when", "maybe", "address"],
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
    value = json.loads(json_answer(7, {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}))
    assert set(value) == set(schema["required"])
    assert isinstance(value["name"], str) and 18 <= value["age"] <= 99
    assert isinstance(value["score"], float) and len(value["tags"]) == 2
    assert value["kind"] in ("a", "b") and value["when"] == "2024-01-01"
    assert isinstance(value["address"]["city"], str)
    assert value == value_for_schema(schema, 7)


def test_png_is_valid_and_sized() -> None:
    data = png_bytes("a red fox", 64, 32)
    assert data == png_bytes("a red fox", 64, 32)
    assert png_size(data) == (64, 32)
    assert data.endswith(b"IEND\xaeB`\x82")


def test_wav_speech_decodes_and_grows_with_text() -> None:
    short, long = speech_audio("Hi.", "wav"), speech_audio("Hello there, this is longer. " * 4, "wav")
    with wave.open(io.BytesIO(long)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, 24_000)
        assert reader.getnframes() > 24_000
    assert len(long) > len(short)
    assert len(speech_audio("Hi there", "pcm")) % 2 == 0


@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("mp3", b"\xff\xfb"), ("opus", b"OggS"), ("aac", b"\xff\xf1"), ("flac", b"fLaC"), ("wav", b"RIFF")],
)
def test_speech_formats_start_with_their_magic(fmt: str, magic: bytes) -> None:
    assert speech_audio("Some words to say", fmt).startswith(magic)
