"""POST audio/transcriptions and audio/translations: multipart uploads, decoded and transcribed.

Options the model does not take are refused before the quota is charged, as validation; the audio itself
is decoded when the answer is made (after faults and latency), off the event loop, and refused then if
it is not audio or is too long for the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pipeline.audio.errors import AudioDecodeError
from pipeline.emulator.diarization import diarized_json, known_speakers, reference_clips
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.hearing import hear
from pipeline.emulator.ops.common import choice_field, json_answer
from pipeline.emulator.transcribers import (
    ALL_FORMATS,
    Transcriber,
    check_options,
    length_refusal,
    transcriber_for,
    undecodable,
)
from pipeline.emulator.transcripts import (
    Transcript,
    srt,
    transcript_of,
    usage_seconds,
    usage_tokens,
    verbose_json,
    vtt,
)

EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")


def _validator(task: str) -> Callable[[Exchange], None]:
    def validate(x: Exchange) -> None:
        _check_upload(x)
        choice_field(x, "response_format", "json", ALL_FORMATS)
        _check_temperature(x)
        model = transcriber_for(x.deployment)
        check_options(model, x.body, task)
        if model.diarizes:
            reference_clips(x.body)  # a malformed list is refused now; the clips are decoded with the upload

    return validate


def _check_upload(x: Exchange) -> None:
    if x.upload is None:
        raise invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    filename = x.upload_name or ""
    if filename.rsplit(".", 1)[-1].lower() not in EXTENSIONS or "." not in filename:
        raise invalid(f"Invalid file format. Supported formats: {list(EXTENSIONS)}", "file", "invalid_value")
    if not x.upload:
        raise invalid("Audio file is too short. Minimum audio length is 0.1 seconds.", "file", "audio_too_short")


def _check_temperature(x: Exchange) -> None:
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


async def _transcribe(x: Exchange, task: str) -> web.StreamResponse:
    assert x.upload is not None  # validate() refused requests without a file
    model = transcriber_for(x.deployment)
    try:
        heard = await asyncio.to_thread(hear, x.upload)  # decoding takes a while: the loop keeps answering
    except AudioDecodeError:
        x.state.stats.audio_refused["undecodable"] += 1
        raise undecodable() from None
    refusal = length_refusal(model, heard.duration, x.body, x.config.max_audio_seconds)
    if refusal is not None:
        x.state.stats.audio_refused["length"] += 1
        raise refusal
    known = await asyncio.to_thread(known_speakers, reference_clips(x.body)) if model.diarizes else {}
    transcript = transcript_of(heard, task, x.body.get("language"))
    return _answer(x, model, transcript, known)


def _answer(x: Exchange, model: Transcriber, transcript: Transcript, known: dict[int, str]) -> web.Response:
    """The transcript in the requested format; `usage` only on OpenAI's routes, as the services differ."""
    fmt = x.body.get("response_format") or "json"
    if fmt in ("text", "srt", "vtt"):
        text = {"text": transcript.text + "\n", "srt": srt(transcript), "vtt": vtt(transcript)}[fmt]
        return web.Response(text=text, content_type="text/plain")
    if fmt == "diarized_json":
        return json_answer(diarized_json(transcript, known, usage=not x.azure))
    body: dict[str, Any]
    if fmt == "verbose_json":
        body = verbose_json(transcript, _granularities(x) if transcript.task == "transcribe" else set())
    else:
        body = {"text": transcript.text}
    if not x.azure:
        body["usage"] = (usage_tokens(transcript) if model.billed_in_tokens
                         else {"type": "duration", "seconds": usage_seconds(transcript)})
    return json_answer(body)


def _granularities(x: Exchange) -> set[str]:
    value = x.body.get("timestamp_granularities") or []
    return {value} if isinstance(value, str) else set(value)


async def respond_transcription(x: Exchange) -> web.StreamResponse:
    return await _transcribe(x, "transcribe")


async def respond_translation(x: Exchange) -> web.StreamResponse:
    return await _transcribe(x, "translate")


TRANSCRIPTIONS = Operation(
    path="audio/transcriptions",
    azure_name="AudioTranscriptions_Create",
    respond=respond_transcription,
    validate=_validator("transcribe"),
    texts=texts,
    multipart=True,
)

TRANSLATIONS = Operation(
    path="audio/translations",
    azure_name="AudioTranslations_Create",
    respond=respond_translation,
    validate=_validator("translate"),
    texts=texts,
    multipart=True,
)
