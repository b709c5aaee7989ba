"""JSONL (optionally gzip-compressed) read line by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.sources.base import Row, stringify_id
from pipeline.storage import StoragePath, as_storage


class JsonlSource:
    def __init__(self, path: Path | StoragePath, id_column: str) -> None:
        self._file = as_storage(path)
        self.path = str(self._file)
        self._id = id_column

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        with self._file.open_stream() as handle:  # gunzipped on the way for .gz
            try:
                for number, raw in enumerate(handle, start=1):
                    if raw.strip():
                        yield number, raw
            except (OSError, EOFError) as exc:
                raise InputError(f"{self._file}: the input could not be read to the end: {exc}") from None

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
