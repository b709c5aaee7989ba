"""Helpers for tests anywhere in the project that talk to the emulator."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


def make_wav(seconds: float, rate: int = 16_000) -> bytes:
    """A silent mono 16-bit WAV of the given length (an upload for transcription tests)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()
