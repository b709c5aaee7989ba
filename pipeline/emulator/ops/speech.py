"""POST audio/speech: audio bytes in the requested format (wav and pcm are real audio)."""

from __future__ import annotations

from aiohttp import web

from pipeline.emulator.content import SPEECH_CONTENT_TYPES, speech_audio
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.ops.common import choice_field, require, string_limit

MAX_INPUT_CHARS = 4096
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


def validate(x: Exchange) -> None:
    text = require(x, "input")
    if not isinstance(text, str) or not text:
        raise invalid("'$.input' is invalid. Please check the API reference.", "input")
    string_limit(x, "input", text, MAX_INPUT_CHARS)
    require(x, "voice")
    choice_field(x, "response_format", "mp3", FORMATS)
    speed = x.body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise invalid(
            f"Invalid 'speed': expected a number between 0.25 and 4.0, but got {speed!r} instead.",
            "speed",
            "invalid_value",
        )


def texts(x: Exchange) -> list[str]:
    text = x.body.get("input")
    return [text] if isinstance(text, str) else []


async def respond(x: Exchange) -> web.StreamResponse:
    fmt = x.body.get("response_format") or "mp3"
    audio = speech_audio(x.body["input"], fmt, float(x.body.get("speed", 1.0)))
    return web.Response(body=audio, headers={"Content-Type": SPEECH_CONTENT_TYPES[fmt]})


SPEECH = Operation(
    path="audio/speech",
    azure_name="AudioSpeech_Create",
    respond=respond,
    validate=validate,
    texts=texts,
)
