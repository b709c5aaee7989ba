"""Parquet datasets of whole part files: buffer rows, then commit each part whole (storage/: a temp file,
fsync and rename on a disk; one upload in object storage).

A closed part is always complete and readable; a crash leaves at most a leftover the next run deletes.
Only closed parts count as done.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.crashpoints import CrashPoint
from pipeline.errors import PipelineError
from pipeline.storage import CommitPoints, OutputWriteError, StoragePath, as_storage, first_line

__all__ = ["PART_COMMIT", "PART_NAME", "OutputWriteError", "PartWriter", "closed_parts", "read_dataset",
           "read_parts", "records_to_table", "write_part"]

# part-000001.parquet from one process; part-<tag>-000001.parquet from one shard of a run spread over
# workers (pipeline/cluster): each attempt at a shard numbers its own, so no two writers share a name.
PART_NAME = re.compile(r"^part-(?:([0-9a-z]+)-)?(\d+)\.parquet$")
PART_COMMIT = CommitPoints(written=CrashPoint.PART_WRITTEN, renamed=CrashPoint.PART_RENAMED,
                           uploading=CrashPoint.PART_UPLOADING)


def closed_parts(folder: Path | StoragePath) -> list[StoragePath]:
    """Committed parts, by name: part-NNNNNN.parquet (one writer's in commit order), part-<tag>-NNNNNN.parquet."""
    return [f for f in as_storage(folder).files() if PART_NAME.match(f.name)]


def part_numbers(folder: StoragePath, tag: str = "") -> list[int]:
    """Numbers of the closed parts one writer (`tag`) committed, for numbering its next one."""
    matches = [PART_NAME.match(p.name) for p in closed_parts(folder)]
    return [int(m.group(2)) for m in matches if m is not None and (m.group(1) or "") == tag]


def records_to_table(records: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Column by column; numpy vectors become one contiguous list<float32> column."""
    arrays = []
    for field in schema:
        values = [r.get(field.name) for r in records]
        if pa.types.is_list(field.type) and values and isinstance(values[0], np.ndarray):
            arrays.append(_vector_column(values, field.type))  # type: ignore[arg-type]
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _vector_column(values: list[np.ndarray], type_: pa.DataType) -> pa.Array:
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(values).astype(np.float32, copy=False)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)).cast(type_)


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """zstd for ordinary columns; vectors stored plain: random floats barely compress, and
    compressing and dictionary-encoding them was most of a part's write time."""
    vectors = {f.name for f in schema if pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type)}
    if not vectors:
        return {"compression": "zstd"}
    return {"compression": {f.name: "none" if f.name in vectors else "zstd" for f in schema},
            "use_dictionary": [f.name for f in schema if f.name not in vectors]}


def part_name(number: int, tag: str = "") -> str:
    return f"part-{tag}-{number:06d}.parquet" if tag else f"part-{number:06d}.parquet"


def write_part(folder: StoragePath, number: int, table: pa.Table, tag: str = "") -> StoragePath:
    """Commit one part whole under its final name; OutputWriteError when storage refuses it."""
    final = folder / part_name(number, tag)
    options = _write_options(table.schema)
    final.commit(lambda sink: pq.write_table(table, sink, **options), PART_COMMIT)
    return final


def read_parts(folder: Path | StoragePath, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """These columns of every closed part of a dataset folder, part by part, in commit order; several
    reads in flight where each is a round trip. A damaged part is named, not skipped."""
    folder = as_storage(folder)
    parts = closed_parts(folder)
    read = partial(_read_part, columns=columns)
    if folder.parallel_reads <= 1:
        yield from map(read, parts)
        return
    with ThreadPoolExecutor(folder.parallel_reads) as pool:
        yield from pool.map(read, parts)


def _read_part(part: StoragePath, columns: list[str] | None) -> pa.Table:
    fs, path = part.arrow()
    try:
        return pq.read_table(path, columns=columns, filesystem=fs)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise PipelineError(f"{part}: cannot read this part ({first_line(exc)}); it was not written by this tool "
                            "or was damaged; move it aside and run again") from None


def read_dataset(folder: Path | StoragePath, columns: list[str] | None = None) -> pa.Table | None:
    """All closed parts of a dataset folder as one table (None when there are none)."""
    tables = list(read_parts(folder, columns))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


class PartWriter:
    """Buffers records for one dataset folder; `take()` hands a full buffer to a flush."""

    def __init__(self, folder: Path | StoragePath, schema: pa.Schema, flush_rows: int, flush_seconds: float,
                 clock: Callable[[], float] = time.monotonic, tag: str = "") -> None:
        self.folder = as_storage(folder)
        self.tag = tag  # a shard attempt's own names (PART_NAME), or none
        self.schema = schema
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._buffer: list[dict[str, Any]] = []
        self._first_at: float | None = None
        self.folder.make_folder()
        self._next = max(part_numbers(self.folder, tag), default=0) + 1
        self.written = 0

    def add(self, record: dict[str, Any]) -> None:
        if self._first_at is None:
            self._first_at = self._clock()
        self._buffer.append(record)

    def __len__(self) -> int:
        return len(self._buffer)

    def due(self) -> bool:
        if not self._buffer:
            return False
        return len(self._buffer) >= self.flush_rows or self._clock() - (self._first_at or 0) >= self.flush_seconds

    def take(self) -> tuple[int, list[dict[str, Any]]] | None:
        """Detach the buffer with the part number it will be written as."""
        if not self._buffer:
            return None
        batch, self._buffer, self._first_at = self._buffer, [], None
        number, self._next = self._next, self._next + 1
        return number, batch

    def write(self, number: int, batch: list[dict[str, Any]]) -> StoragePath:
        path = write_part(self.folder, number, records_to_table(batch, self.schema), self.tag)
        self.written += len(batch)
        return path

    def flush(self) -> StoragePath | None:
        taken = self.take()
        return self.write(*taken) if taken else None
