"""Speech endpoint: params, request body, byte answers, audio files; no server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.emulator.charges import charge_tokens
from pipeline.endpoints.base import HttpResponse, Item, Request, RowError
from pipeline.endpoints.speech import MAX_INPUT_CHARS, Speech
from pipeline.errors import InvalidResponseError, SpecError
from pipeline.sinks.files import OutputFiles
from pipeline.sinks.outputs import write_files
from pipeline.sources.base import Row
from pipeline.spec import parse_spec

ONE_ROW = Request("test", [Item(Row("a", {}, 1), None)])  # what parse needs of a request: one input


def make(tmp_path: Path, params: dict | None = None) -> Speech:
    raw = {"name": "s", "endpoint": "speech", "input": {"path": str(tmp_path), "text": "text"},
           "output": {"path": str(tmp_path / "out")}, "params": params or {}}
    return Speech(parse_spec(raw, tmp_path / "job.toml", env={}))


def test_build_defaults_voice_and_asks_for_bytes(tmp_path: Path) -> None:
    speech = make(tmp_path, {"response_format": "wav", "speed": 1.5})
    request = speech.build([speech.prepare(Row("a", {"text": "Hello."}, 1))])
    assert request.json == {"response_format": "wav", "speed": 1.5, "voice": "alloy", "input": "Hello."}
    assert request.accept == "bytes" and request.op == "audio/speech"
    assert request.tokens == 0 == charge_tokens("audio/speech", request.json)  # as the emulator charges
    assert speech.counts_tokens is False


@pytest.mark.parametrize(("params", "message"), [
    ({"response_format": "ogg"}, "params.response_format: must be one of mp3, opus"),
    ({"speed": 5}, "params.speed: must be a number from 0.25 to 4.0"),
    ({"speed": True}, "params.speed"),
])
def test_spec_errors(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make(tmp_path, params)


def test_row_errors(tmp_path: Path) -> None:
    speech = make(tmp_path)
    with pytest.raises(RowError, match="over the 4096-character limit"):
        speech.prepare(Row("a", {"text": "x" * (MAX_INPUT_CHARS + 1)}, 3))
    with pytest.raises(RowError, match="'text' is empty"):
        speech.prepare(Row("b", {"text": " "}, 4))


@pytest.mark.parametrize(("body", "headers"), [(b"", {}), (b'{"error": 1}', {"content-type": "application/json"})])
def test_parse_refuses_non_audio(tmp_path: Path, body: bytes, headers: dict) -> None:
    with pytest.raises(InvalidResponseError):
        make(tmp_path).parse(ONE_ROW, HttpResponse(200, headers, body, 0.1))


async def test_finish_writes_audio_file(tmp_path: Path) -> None:
    speech = make(tmp_path, {"response_format": "flac"})
    request = speech.build([speech.prepare(Row("greetings/hi", {"text": "Hi."}, 1))])
    audio = b"fLaC" + bytes(100)
    results = speech.parse(request, HttpResponse(200, {"content-type": "audio/flac"}, audio, 0.1))
    (result,) = await write_files(speech, request, results, OutputFiles(tmp_path / "out", download=None))  # type: ignore[arg-type]
    assert result == {"path": "audio/greetings/hi.flac", "bytes": 104, "sha256": hashlib.sha256(audio).hexdigest()}
    assert (tmp_path / "out" / "audio" / "greetings" / "hi.flac").read_bytes() == audio
