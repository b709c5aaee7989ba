"""Batch files, without I/O to the service: where they go, the lines we write, what the lines we read mean.

Per-file limits are module constants (tests lower them): Azure global batch takes 100,000 lines
per file, OpenAI 50,000; both take files up to 200 MB.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.client.transport import status_error
from pipeline.endpoints.base import HttpResponse
from pipeline.errors import APIError
from pipeline.spec import ServiceSpec

MAX_LINES = {"openai": 50_000, "azure": 100_000, "emulator": 100_000}
MAX_FILE_BYTES = 200_000_000  # "200 MB" read as decimal: under the limit whichever way the service counts
# Codes of output lines the batch never ran: those rows are sent again, they did not fail.
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})
STREAM_KEYS = ("stream", "stream_options")  # the Batch API answers whole bodies only


class BatchLineError(APIError):
    """An output line whose request did not run: it carries an `error` object and no response."""


class BatchFailedError(APIError):
    """A whole batch that failed, expired or was cancelled without running any of its lines."""


def file_limits(service: ServiceSpec) -> tuple[int, int]:
    """(lines, bytes) per input file for the service; read at call time so tests can lower them."""
    return MAX_LINES.get(service.provider, MAX_LINES["azure"]), MAX_FILE_BYTES


def line_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A request body as a batch line carries it: the model always named, never streamed."""
    return {**{k: v for k, v in body.items() if k not in STREAM_KEYS}, "model": model}


def input_line(custom_id: str, url: str, body: dict[str, Any]) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode()


# --------------------------------------------------------------------------- input files


def input_name(number: int) -> str:
    return f"input-{number:06d}.jsonl"


def ids_name(number: int) -> str:
    return f"input-{number:06d}.ids.jsonl"


@dataclass(frozen=True)
class InputFile:
    number: int
    lines: int
    bytes: int


@dataclass
class _Open:
    number: int
    data: IO[bytes]
    ids: IO[bytes]
    lines: int = 0
    bytes: int = 0


class InputFileWriter:
    """Lines into input-NNNNNN.jsonl files, starting a new file before a line or byte limit would be passed.

    Each file has a sidecar, input-NNNNNN.ids.jsonl, of one {"id", "line", "keep"} object per line:
    it tells which rows a batch holds once the input file itself is gone. Both are written as
    .tmp and renamed on close, so a crash leaves nothing that looks finished.
    """

    def __init__(self, folder: Path, first_number: int, max_lines: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._next = first_number
        self._open: _Open | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, entry: dict[str, Any], line: bytes) -> InputFile | None:
        """Write one line; returns the file this closed, if the line had to start a new one."""
        closed = None
        current = self._open
        if current is not None and (current.lines >= self.max_lines or current.bytes + len(line) > self.max_bytes):
            closed = self.close()  # a single line over max_bytes still gets a file: the service will say why
        current = self._open or self._start()
        current.data.write(line)
        current.ids.write((json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode())
        current.lines += 1
        current.bytes += len(line)
        return closed

    def _start(self) -> _Open:
        number, self._next = self._next, self._next + 1
        self._open = _Open(number, open(self._temp(input_name(number)), "wb"),  # noqa: SIM115
                           open(self._temp(ids_name(number)), "wb"))  # noqa: SIM115
        return self._open

    def _temp(self, name: str) -> Path:
        return self.folder / (name + ".tmp")

    def close(self) -> InputFile | None:
        """Close the current file, if any, and make it final."""
        current, self._open = self._open, None
        if current is None:
            return None
        for handle, name in ((current.data, input_name(current.number)), (current.ids, ids_name(current.number))):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(self._temp(name), self.folder / name)
        return InputFile(current.number, current.lines, current.bytes)


# --------------------------------------------------------------------------- output lines


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """One line of a batch's output or error file."""

    custom_id: str
    status: int | None
    body: Any  # the answer's JSON, for a line that succeeded
    request_id: str | None
    error: APIError | None = None
    not_run: bool = False  # expired or cancelled before it ran: send again


@dataclass(slots=True)
class LineResponse(HttpResponse):
    """A line's answer as the endpoints parse it; the JSON is already decoded, so it is not decoded twice."""

    parsed: Any = field(default=None)

    def json(self) -> Any:
        return self.parsed


def read_output_line(raw: bytes) -> LineOutcome | None:
    """An output or error line -> its outcome; None for a line that is not a batch output line."""
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
        return None
    custom_id = item["custom_id"]
    response: dict[str, Any] = item["response"] if isinstance(item.get("response"), dict) else {}
    error = item.get("error") if isinstance(item.get("error"), dict) else None
    status, request_id = response.get("status_code"), response.get("request_id")
    if isinstance(status, int) and status < 400 and error is None:
        return LineOutcome(custom_id, status, response.get("body"), request_id)
    if isinstance(status, int) and status >= 400:
        headers = {"x-request-id": request_id} if request_id else {}
        failure = status_error(status, headers, json.dumps(response.get("body")).encode())
        return LineOutcome(custom_id, status, None, request_id, failure)
    code = str((error or {}).get("code") or "batch_line_failed")
    message = str((error or {}).get("message") or "the line has neither a response nor an error")
    return LineOutcome(custom_id, None, None, request_id, BatchLineError(message, code=code, request_id=request_id),
                       not_run=code in NOT_RUN_CODES)
