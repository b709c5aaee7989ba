"""Helpers for tests anywhere in the project that talk to the emulator."""

from __future__ import annotations

import base64
import io
import tempfile
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from pipeline.audio import samples
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorServer

AZURE_KEY_HEADERS = {"api-key": "test-key"}
API_VERSION = "2024-10-21"


def azure_url(base_url: str, deployment: str, op: str, api_version: str | None = API_VERSION) -> str:
    """The classic Azure route for `op` ("chat/completions", ...) on a deployment."""
    query = f"?api-version={api_version}" if api_version else ""
    return f"{base_url}/openai/deployments/{deployment}/{op}{query}"


@asynccontextmanager
async def running_emulator(**fields: Any) -> AsyncIterator[EmulatorServer]:
    """An EmulatorServer on a free 127.0.0.1 port, configured with `fields`."""
    server = EmulatorServer(EmulatorConfig(**fields))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def fault_marker(kind: str, times: int | str = 1) -> str:
    """The text that makes the first `times` requests carrying it fail with `kind`."""
    return f"[[fault:{kind}:{times}]]"


def make_wav(seconds: float, rate: int = 16_000, pitch: float = samples.pitch_for(0)) -> bytes:
    """A mono 16-bit WAV of the given length holding one sentence (a tone burst, see pipeline.audio.samples)
    from 0.1 s to 0.1 s before its end: real audio, in which the emulator hears one speech region."""
    margin = 0.1 if seconds >= 0.5 else 0.0
    sentence = samples.Sentence(margin, seconds - margin, pitch, int(pitch // samples.SPEAKER_BAND_HZ))
    return recording(samples.Script((sentence,), seconds), "wav", rate)


def recording(plan: samples.Script, fmt: str = "wav", rate: int = samples.RATE) -> bytes:
    """The bytes of a recording of `plan` in `fmt` (an extension of samples.FORMATS: wav, mp3, ogg, flac...)."""
    if fmt == "wav":  # the stdlib writes WAV, quicker than an encoder
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(rate)
            for block in samples.render(plan, rate):
                writer.writeframes(block.astype(np.int16).tobytes())
        return out.getvalue()
    with tempfile.TemporaryDirectory() as folder:  # PyAV's muxers want a seekable file with a name
        return samples.write(Path(folder) / f"recording.{fmt}", plan, rate=rate).read_bytes()


def data_url(audio: bytes, mime: str = "audio/wav") -> str:
    """`audio` as a data URL, as known_speaker_references[] takes it."""
    return f"data:{mime};base64,{base64.b64encode(audio).decode()}"


def audio_form(audio: bytes, filename: str = "clip.wav", content_type: str = "audio/wav",
               **fields: str | list[str]) -> aiohttp.FormData:
    """A transcription upload as the SDK sends it: the file, then fields (lists as repeated `name[]` parts)."""
    data = aiohttp.FormData()
    data.add_field("file", audio, filename=filename, content_type=content_type)
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.add_field(name, item)
    return data
