"""Parquet parts in object storage: each part is one object, uploaded whole under its final name.

Why not a temp name and a rename, as on a disk: object stores cannot rename. pyarrow's AzureFileSystem
moves only on hierarchical-namespace accounts, and its copy (Copy Blob From URL) is refused by Azure for
private blobs. An upload is committed in one step instead (Put Block List, CompleteMultipartUpload, GCS
finalize), so a part's content is all or nothing. One catch on Azure: pyarrow creates an empty blob when it
opens the stream, so until the commit a 0-byte object with the final name exists. A part therefore counts
as closed only when it is not empty, and the next run deletes empty leftovers as it deletes .tmp files.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.errors import PipelineError
from pipeline.sinks.parquet import PART_NAME, OutputWriteError, _write_options
from pipeline.storage import Location, first_line

READ_THREADS = 8  # parts are small objects: reading them one by one would be all round trips


def closed_cloud_parts(folder: Location) -> list[Location]:
    """Committed parts, in order: named part-NNNNNN.parquet and not empty."""
    infos = [i for i in folder.files() if PART_NAME.match(i.base_name) and i.size]
    return [folder.child(i) for i in sorted(infos, key=lambda i: i.base_name)]


def unfinished_cloud_parts(folder: Location) -> list[Location]:
    """What a crashed upload leaves: empty part objects (Azure) and .tmp objects."""
    return [folder.child(i) for i in folder.files()
            if i.base_name.endswith(".tmp") or (PART_NAME.match(i.base_name) and not i.size)]


def part_numbers(folder: Location) -> list[int]:
    """Numbers of the closed parts, for numbering the next one."""
    return [int(PART_NAME.match(p.name).group(1)) for p in closed_cloud_parts(folder)]  # type: ignore[union-attr]


def write_cloud_part(folder: Location, number: int, table: pa.Table) -> Location:
    """Serialize in memory, then upload in one piece: nothing is committed until the whole part is sent."""
    final = folder / f"part-{number:06d}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_write_options(table.schema))
    return upload_whole(final, sink.getvalue(), CrashPoint.PART_UPLOADING)


def upload_whole(target: Location, data: Any, crash_at: CrashPoint) -> Location:
    """One object in one upload under its final name (parts, images, audio, sidecars): its content is all or
    nothing; on Azure an empty object shows until the commit (see the module docstring)."""
    try:
        target.write_bytes(data, before_commit=lambda: crash_point(crash_at))
    except OSError as exc:
        raise OutputWriteError(f"{target}: could not upload ({first_line(exc)}); "
                               "nothing partial counts as done, run again") from None
    return target


def read_cloud_parts(parts: list[Location], columns: list[str] | None = None) -> list[pa.Table]:
    """Read parts concurrently; a damaged part is named, not skipped."""
    def read(part: Location) -> pa.Table:
        try:
            return pq.read_table(part.path, columns=columns, filesystem=part.fs)
        except Exception as exc:  # pyarrow raises several types for a damaged object
            raise PipelineError(f"{part}: cannot read this part ({first_line(exc)}); it was not written by this "
                                "tool or was damaged; move it aside and run again") from None

    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read, parts))


def read_cloud_dataset(folder: Location, columns: list[str] | None = None) -> pa.Table | None:
    """All closed parts of a dataset folder as one table (None when there are none)."""
    parts = closed_cloud_parts(folder)
    if not parts:
        return None
    return pa.concat_tables(read_cloud_parts(parts, columns), promote_options="default")
