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
    def __init__(self, path: Path | StoragePath, id_column: str, needed: list[str]) -> None:
        self._file = as_storage(path)
        self.path = str(self._file)
        self._id = id_column
        self._needed = needed

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

    def _iter(self, columns: list[str]) -> Iterator[Row]:
        number = 0
        try:
            for batch in self._open().iter_batches(batch_size=BATCH_ROWS, columns=columns):
                for data in batch.to_pylist():
                    number += 1
                    row_id = stringify_id(data.get(self._id))
                    if row_id is None:
                        yield Row(f"#row:{number}", data, number, f"row {number}: no usable '{self._id}' value")
                    else:
                        yield Row(row_id, data, number)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self._file}: failed reading at row {number + 1}: {exc}") from None

    def count(self) -> int:
        return int(self._open().metadata.num_rows)
