"""Parquet read by record batches, only the columns the job needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.sources.base import Row, stringify_id
from pipeline.storage import StoragePath, as_storage

BATCH_ROWS = 2048


class ParquetSource:
    def __init__(self, path: Path | StoragePath, id_column: str, needed: list[str],
                 rows: range | None = None) -> None:
        self._file = as_storage(path)
        self.path = str(self._file)
        self._id = id_column
        self._needed = needed
        self._range = rows  # a shard's rows (0-based positions), read from the row groups that hold them

    def ranging(self, rows: range) -> ParquetSource:
        return ParquetSource(self._file, self._id, self._needed, rows)

    def row_group_sizes(self) -> list[int]:
        metadata = self._open().metadata
        return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]

    def _open(self) -> pq.ParquetFile:
        fs, path = self._file.arrow()
        try:
            return pq.ParquetFile(path, filesystem=fs)  # the footer first, then row groups on demand
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{self._file}: not a readable Parquet file: {exc}") from None

    def columns(self) -> list[str]:
        return list(self._open().schema_arrow.names)

    def _selected(self, available: list[str]) -> list[str]:
        wanted = [self._id, *self._needed]
        missing = [c for c in wanted if c not in available]
        if missing:
            raise InputError(f"{self._file}: column(s) {', '.join(missing)} not found; the file has "
                             f"{', '.join(available)}. Fix [input] in the job spec.")
        return list(dict.fromkeys(wanted))

    def rows(self) -> Iterator[Row]:
        yield from self._iter(self._selected(self.columns()))

    def ids(self) -> Iterator[tuple[str, int]]:
        for row in self._iter(self._selected(self.columns())[:1]):
            yield row.id, row.line

    def _groups(self) -> tuple[list[int] | None, int]:
        """The row groups to read (None: all) and the position of their first row."""
        if self._range is None:
            return None, 0
        groups, first, position = [], None, 0
        for index, size in enumerate(self.row_group_sizes()):
            if position < self._range.stop and position + size > self._range.start:
                groups.append(index)
                first = position if first is None else first
            position += size
        return groups, first or 0

    def _iter(self, columns: list[str]) -> Iterator[Row]:
        groups, number = self._groups()
        if groups == []:
            return
        wanted = self._range if self._range is not None else range(1 << 62)
        try:
            for batch in self._open().iter_batches(batch_size=BATCH_ROWS, columns=columns, row_groups=groups):
                base = number  # the shard's rows only: its first and last row groups hold others too
                low = min(batch.num_rows, max(0, wanted.start - base))
                high = max(low, min(batch.num_rows, wanted.stop - base))
                number = base + low
                for data in batch.slice(low, high - low).to_pylist():
                    number += 1
                    row_id = stringify_id(data.get(self._id))
                    if row_id is None:
                        yield Row(f"#row:{number}", data, number, f"row {number}: no usable '{self._id}' value")
                    else:
                        yield Row(row_id, data, number)
                number = base + batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self._file}: failed reading at row {number + 1}: {exc}") from None

    def count(self) -> int:
        return len(self._range) if self._range is not None else int(self._open().metadata.num_rows)
