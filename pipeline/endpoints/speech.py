"""Text to speech: one text per request, the audio saved as a file beside the results.

Columns: `path` (audio/<safe id>.<response_format>, relative to the output folder), `bytes`,
`sha256`. Speech quotas are requests per minute; like the emulator (charges.py) we charge no tokens.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request, RowError, text_field
from pipeline.endpoints.files import FileOutput, WrittenFile, safe_relative
from pipeline.errors import InvalidResponseError, SpecError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec

AUDIO_DIR = "audio"
AUDIO_KEY = "_audio"  # the answer's bytes, from parse to outputs(); never a column
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MAX_INPUT_CHARS = 4096
DEFAULT_VOICE = "alloy"


class Speech(Endpoint):
    kind = "speech"
    op = "audio/speech"
    counts_tokens = False
    writes_files = True

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.params.setdefault("voice", DEFAULT_VOICE)
        self.format = str(self.params.get("response_format", "mp3"))
        if self.format not in FORMATS:
            raise SpecError(f"{spec.source_file}: params.response_format: must be one of {', '.join(FORMATS)}; "
                            f"got {self.format!r}")
        speed = self.params.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            raise SpecError(f"{spec.source_file}: params.speed: must be a number from 0.25 to 4.0, got {speed!r}")

    def prepare(self, row: Row) -> Item:
        assert self.spec.input.text is not None  # spec.py requires it for speech
        text = text_field(row, self.spec.input.text)
        if len(text) > MAX_INPUT_CHARS:
            raise RowError(f"row {row.id!r} (line {row.line}): text is {len(text)} characters, over the "
                           f"{MAX_INPUT_CHARS}-character limit of audio/speech; split it")
        return Item(row, text, tokens=0)

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        return Request(self.op, batch, json={**self.params, "input": item.payload}, tokens=0, accept="bytes")

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        if not response.body:
            raise InvalidResponseError("the answer holds no audio", request_id=response.request_id)
        if response.headers.get("content-type", "").startswith("application/json"):
            raise InvalidResponseError("the answer is JSON, not audio", request_id=response.request_id)
        return [{AUDIO_KEY: response.body}]

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("path", pa.string()), pa.field("bytes", pa.int64()), pa.field("sha256", pa.string())]

    def outputs(self, request: Request, results: list[dict[str, Any]]) -> list[list[FileOutput]]:
        """The audio, written whole before the row is committed."""
        (item,), (result,) = request.items, results
        relative = f"{AUDIO_DIR}/{safe_relative(item.row.id)}.{self.format}"
        return [[FileOutput(lambda _data: relative, result.pop(AUDIO_KEY), kind="audio")]]

    def with_files(self, request: Request, results: list[dict[str, Any]],
                   written: list[list[WrittenFile]]) -> list[dict[str, Any]]:
        ((file,),), (result,) = written, results
        result.update(path=file.relative, bytes=file.size, sha256=file.sha256)
        return results
