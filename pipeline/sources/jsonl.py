"""JSONL (optionally gzip-compressed) read line by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.errors import InputError
from pipeline.sources.base import Row, stringify_id
from pipeline.storage import StoragePath, as_storage

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ByteSpan:
    """The lines starting in [start, end) of an uncompressed file; `first_line` is the number of the first."""

    start: int
    end: int
    first_line: int


class JsonlSource:
    def __init__(self, path: Path | StoragePath, id_column: str, span: ByteSpan | None = None) -> None:
        self._file = as_storage(path)
        self.path = str(self._file)
        self._id = id_column
        self._span = span

    def seekable(self) -> bool:
        """Whether shards can be byte ranges (a gzip'd file must be read from its start)."""
        return not self._file.name.lower().endswith(".gz")

    def size(self) -> int:
        return self._file.size_and_head(0)[0]

    def raw(self) -> IO[bytes]:
        """The file's bytes as stored, for cutting it into shards."""
        fs, path = self._file.arrow()
        return fs.open_input_stream(path, compression=None)  # type: ignore[no-any-return]

    def spanning(self, span: ByteSpan) -> JsonlSource:
        return JsonlSource(self._file, self._id, span)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        try:
            numbered = self._span_lines(self._span) if self._span else self._all_lines()
            for number, raw in numbered:
                if raw.strip():
                    yield number, raw
        except (OSError, EOFError) as exc:
            raise InputError(f"{self._file}: the input could not be read to the end: {exc}") from None

    def _all_lines(self) -> Iterator[tuple[int, bytes]]:
        with self._file.open_stream() as handle:  # gunzipped on the way for .gz
            yield from enumerate(handle, start=1)

    def _span_lines(self, span: ByteSpan) -> Iterator[tuple[int, bytes]]:
        """The span's lines, read by ranged reads (a shard of a job spread over workers)."""
        fs, path = self._file.arrow()
        number, carry = span.first_line, b""
        with fs.open_input_file(path) as handle:
            handle.seek(span.start)
            left = span.end - span.start
            while left > 0:
                chunk = handle.read(min(READ_CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                lines = (carry + chunk).split(b"\n")
                carry = lines.pop()
                for raw in lines:
                    yield number, raw + b"\n"
                    number += 1
        if carry:  # the file's last line, without a newline
            yield number, carry

    def rows(self) -> Iterator[Row]:
        for number, raw in self._lines():
            yield self._parse(number, raw)

    def _parse(self, number: int, raw: bytes) -> Row:
        placeholder = f"#line:{number}"
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # editors on Windows add a BOM
        except UnicodeDecodeError as exc:
            return Row(placeholder, {}, number, f"line {number}: invalid UTF-8 at byte {exc.start}")
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            return Row(placeholder, {}, number, f"line {number}: malformed JSON ({exc.msg}, column {exc.colno})")
        if not isinstance(data, dict):
            return Row(placeholder, {}, number, f"line {number}: expected a JSON object, got {type(data).__name__}")
        row_id = stringify_id(data.get(self._id))
        if row_id is None:
            return Row(placeholder, data, number, f"line {number}: no usable '{self._id}' value (string or integer)")
        return Row(row_id, data, number)

    def ids(self) -> Iterator[tuple[str, int]]:
        for row in self.rows():
            yield row.id, row.line

    def count(self) -> int:
        """Non-blank lines, counted without parsing JSON."""
        return sum(1 for _ in self._lines())

    def columns(self) -> list[str] | None:
        for row in self.rows():
            if row.error is None:
                return list(row.fields)
        return None
