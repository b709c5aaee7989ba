"""POST audio/transcriptions and audio/translations (multipart uploads, Whisper formats)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.ops.common import choice_field, json_answer
from pipeline.emulator.transcripts import srt, transcript_for, usage_seconds, verbose_json, vtt

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")


def validate(x: Exchange) -> None:
    if x.upload is None:
        raise invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    filename = x.upload_name or ""
    if filename.rsplit(".", 1)[-1].lower() not in EXTENSIONS or "." not in filename:
        raise invalid(f"Invalid file format. Supported formats: {list(EXTENSIONS)}", "file", "invalid_value")
    if not x.upload:
        raise invalid("Audio file is too short. Minimum audio length is 0.1 seconds.", "file", "audio_too_short")
    choice_field(x, "response_format", "json", FORMATS)
    temperature = x.body.get("temperature", "0")
    try:
        in_range = 0.0 <= float(temperature) <= 1.0
    except ValueError:
        in_range = False
    if not in_range:
        raise invalid(f"Invalid 'temperature': expected a number between 0 and 1, got {temperature!r}.", "temperature")


def texts(x: Exchange) -> list[str]:
    prompt = x.body.get("prompt")
    return [prompt] if isinstance(prompt, str) else []


def _granularities(x: Exchange) -> set[str]:
    value = x.body.get("timestamp_granularities") or []
    return {value} if isinstance(value, str) else set(value)


async def _respond(x: Exchange, task: str) -> web.StreamResponse:
    assert x.upload is not None  # validate() refused requests without a file
    transcript = transcript_for(x.upload, task, x.body.get("language"))
    fmt = x.body.get("response_format") or "json"
    if fmt in ("text", "srt", "vtt"):
        text = {"text": transcript.text + "\n", "srt": srt(transcript), "vtt": vtt(transcript)}[fmt]
        return web.Response(text=text, content_type="text/plain")
    body: dict[str, Any]
    if fmt == "verbose_json":
        granularities = _granularities(x) if task == "transcribe" else set()
        body = verbose_json(transcript, granularities)
    else:
        body = {"text": transcript.text}
    if not x.azure:
        body["usage"] = {"type": "duration", "seconds": usage_seconds(transcript)}
    return json_answer(body)


async def respond_transcription(x: Exchange) -> web.StreamResponse:
    return await _respond(x, "transcribe")


async def respond_translation(x: Exchange) -> web.StreamResponse:
    return await _respond(x, "translate")


TRANSCRIPTIONS = Operation(
    path="audio/transcriptions",
    azure_name="AudioTranscriptions_Create",
    respond=respond_transcription,
    validate=validate,
    texts=texts,
    multipart=True,
)

TRANSLATIONS = Operation(
    path="audio/translations",
    azure_name="AudioTranslations_Create",
    respond=respond_translation,
    validate=validate,
    texts=texts,
    multipart=True,
)
