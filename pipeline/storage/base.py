"""The one interface inputs, outputs and the checkpoint use for files and folders, local or in object storage.

A `StoragePath` names a file or a folder; `LocalPath` (storage/local.py) and `Location` (storage/cloud.py)
implement it. Writers never write an object in place: `commit` makes a whole object appear at once or not
at all (a temp file, fsync, rename and folder fsync on a disk; one upload in object storage), so a reader,
or a run resuming after kill -9, never sees half of one. What a crashed commit leaves is listed by
`leftovers` and is never mistaken for data by `files`.

Errors: reads raise StorageError (exit 2) and writes OutputWriteError (exit 5), each one line naming the
object; callers add what the failure means for the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, Self

import pyarrow.fs as pafs

from pipeline.crashpoints import CrashPoint
from pipeline.errors import PipelineError
from pipeline.redact import redact

Writer = Callable[[Any], None]
"""Writes an object's content to the binary file-like it is handed (a file on disk, or a memory buffer)."""


class StorageError(PipelineError):
    """Storage refused or could not find something: a setup problem, reported in one line (exit 2)."""


class OutputWriteError(PipelineError):
    """An object could not be committed (disk full, permissions, the service refused). Nothing partial
    counts: a crashed or failed commit leaves at most a leftover the next run deletes (exit 5)."""


@dataclass(frozen=True)
class CommitPoints:
    """The crash points a commit passes (pipeline/crashpoints.py), one per protocol moment; None skips it.

    The moments differ by storage: a disk has a written temp file and then a rename, an object store only
    an upload that is sent but not yet committed."""

    written: CrashPoint | None = None  # disk: the temp file is complete and fsynced, not yet renamed
    renamed: CrashPoint | None = None  # disk: renamed, its folder not yet fsynced
    uploading: CrashPoint | None = None  # object storage: every byte sent, the upload not yet committed


NO_POINTS = CommitPoints()


class StoragePath(Protocol):
    """A file or folder, local or in object storage: what sources, sinks and the checkpoint need of it."""

    @property
    def name(self) -> str:
        """The last part of the path."""

    def __str__(self) -> str: ...

    def __truediv__(self, name: str) -> Self: ...

    def local_path(self) -> Path | None:
        """The path on this machine, for tools that need a real file (batch mode); None in object storage."""

    # ---- reading

    def exists(self) -> bool: ...

    def files(self) -> list[Self]:
        """Committed files directly in this folder, sorted by name; none when the folder does not exist."""

    def walk_files(self) -> Iterator[str]:
        """Relative paths of the visible files at any depth (hidden names and folders left out), depth first
        with names sorted, so the order is the same on every run and every storage."""

    def read_or_none(self) -> bytes | None:
        """The whole (small) object, or None when it does not exist."""

    def read_all(self) -> bytes:
        """The whole object; StorageError when it is gone."""

    def size_and_head(self, count: int) -> tuple[int, bytes]:
        """The object's size and its first `count` bytes (a ranged read)."""

    def open_stream(self) -> IO[bytes]:
        """A buffered reader streaming the object; `.gz` objects are decompressed on the way."""

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow filesystem and path, for Parquet's own ranged reads (footer, then row groups)."""

    @property
    def parallel_reads(self) -> int:
        """How many small reads are worth keeping in flight: 1 on a disk, more where each is a round trip."""

    # ---- writing

    def make_folder(self) -> None:
        """Make this folder exist where folders are real (a disk); object-store prefixes need nothing."""

    def check_writable(self) -> None:
        """Fail early, in one line, when this output folder cannot be written."""

    def commit(self, write: Writer, points: CommitPoints = NO_POINTS) -> None:
        """Write the object whole under this name, atomically. OutputWriteError when it fails."""

    def create_exclusive(self, data: bytes) -> bool:
        """Write a small object only if none is there (the lock); False when another one is."""

    def delete(self) -> None:
        """Remove the object; nothing when it is already gone."""

    def leftovers(self) -> list[Self]:
        """What crashed commits left in this folder: never committed, safe to delete."""


def content(data: Any) -> Writer:
    """A Writer for bytes already in memory."""
    return lambda sink: sink.write(data)


def in_walk_order(relatives: Iterable[str]) -> list[str]:
    """Relative paths in the order of a depth-first walk with names sorted (a local folder's order),
    without hidden files or anything in a hidden folder."""
    visible = (r for r in relatives if not any(part.startswith(".") for part in r.split("/")))
    return sorted(visible, key=lambda r: r.split("/"))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, redacted: service errors run to many lines."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return redact(line[:300])
