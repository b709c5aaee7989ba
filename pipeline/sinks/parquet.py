"""Parquet datasets of whole part files: buffer rows, write part-NNNNNN.parquet.tmp, fsync, rename.

A closed part is always complete and readable; a crash leaves at most a .tmp file, which the
next run deletes. Only closed parts count as done.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.storage import Location

PART_NAME = re.compile(r"^part-(\d+)\.parquet$")


class OutputWriteError(PipelineError):
    """A part could not be written (disk full, permissions). Nothing partial is left behind."""


def closed_parts(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if PART_NAME.match(p.name))


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


def write_part(folder: Path, number: int, table: pa.Table) -> Path:
    """Write one part atomically: temp file, fsync, rename, fsync the folder."""
    final = folder / f"part-{number:06d}.parquet"
    temp = final.with_name(final.name + ".tmp")
    try:
        pq.write_table(table, temp, **_write_options(table.schema))
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        crash_point(CrashPoint.PART_WRITTEN)
        os.replace(temp, final)
        crash_point(CrashPoint.PART_RENAMED)
        _fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):  # on a read-only disk even this fails; the next run deletes it
            temp.unlink(missing_ok=True)
        raise OutputWriteError(f"{folder}: could not write {final.name}: {exc.strerror or exc}; "
                               "nothing partial was kept, free space or fix permissions and run again") from None
    return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _part_numbers(folder: Path | Location) -> list[int]:
    """Numbers of the closed parts in a dataset folder, creating a local folder on the way."""
    if not isinstance(folder, Path):
        from pipeline.sinks.cloud import part_numbers  # the cloud code loads only for cloud outputs

        return part_numbers(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [int(PART_NAME.match(p.name).group(1)) for p in closed_parts(folder)]  # type: ignore[union-attr]


def _commit_part(folder: Path | Location, number: int, table: pa.Table) -> Path | Location:
    """Local: temp file + fsync + rename. Object storage: one upload under the final name (sinks/cloud.py)."""
    if isinstance(folder, Path):
        return write_part(folder, number, table)
    from pipeline.sinks.cloud import write_cloud_part

    return write_cloud_part(folder, number, table)


class PartWriter:
    """Buffers records for one dataset folder; `take()` hands a full buffer to a flush."""

    def __init__(self, folder: Path | Location, schema: pa.Schema, flush_rows: int, flush_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.schema = schema
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._buffer: list[dict[str, Any]] = []
        self._first_at: float | None = None
        self._next = max(_part_numbers(folder), default=0) + 1
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

    def write(self, number: int, batch: list[dict[str, Any]]) -> Path | Location:
        path = _commit_part(self.folder, number, records_to_table(batch, self.schema))
        self.written += len(batch)
        return path

    def flush(self) -> Path | Location | None:
        taken = self.take()
        return self.write(*taken) if taken else None
