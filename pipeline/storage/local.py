"""Files and folders on a local disk: the `StoragePath` of a local input, output or checkpoint.

Commits are the one place a local write becomes durable: write `NAME.tmp`, fsync it, rename it over
`NAME`, fsync the folder (without that last step a power cut can forget the rename, and a part a resume
trusted would vanish). A crash at any moment leaves either the old state or the whole new object, plus
at most a `.tmp` file that `leftovers` finds.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow.fs as pafs

from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.storage.base import NO_POINTS, CommitPoints, OutputWriteError, StorageError, Writer

TEMP_SUFFIX = ".tmp"


if TYPE_CHECKING:
    _ConcretePath = Path
else:  # pathlib before 3.12 can be subclassed only through the concrete class of this OS
    _ConcretePath = type(Path())


class LocalPath(_ConcretePath):
    """A path on this machine. It is a pathlib.Path as well, so code and tests that need a real file
    (batch mode's state, a test that breaks a part on purpose) use it as one."""

    def local_path(self) -> Path:
        return self

    @property
    def parallel_reads(self) -> int:
        return 1  # a disk answers at once: reading part by part keeps one part's columns in memory

    # ---- reading

    def files(self) -> list[LocalPath]:
        if not self.is_dir():
            return []
        return sorted(p for p in self.iterdir() if not p.name.endswith(TEMP_SUFFIX))

    def walk_files(self) -> Iterator[str]:
        for file in _walk(self):
            yield file.relative_to(self).as_posix()

    def read_or_none(self) -> bytes | None:
        try:
            return self.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, "read") from None

    def read_all(self) -> bytes:
        data = self.read_or_none()
        if data is None:
            raise StorageError(f"{self}: cannot read: not found (it was there when the run listed it)")
        return data

    def size_and_head(self, count: int) -> tuple[int, bytes]:
        try:
            with open(self, "rb") as handle:
                return os.fstat(handle.fileno()).st_size, handle.read(count)
        except OSError as exc:
            raise self._error(exc, "read") from None

    def open_stream(self) -> IO[bytes]:
        try:
            if self.name.endswith(".gz"):
                return gzip.open(self, "rb")  # type: ignore[return-value]
            return open(self, "rb")
        except OSError as exc:
            raise self._error(exc, "open") from None

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self)

    # ---- writing

    def make_folder(self) -> None:
        try:
            self.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._not_writable(exc) from None

    def check_writable(self) -> None:
        """A probe file written and removed: a read-only disk or folder fails here, before any request."""
        probe = self / ".write-test"
        try:
            self.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self._not_writable(exc) from None

    def commit(self, write: Writer, points: CommitPoints = NO_POINTS) -> None:
        temp = self.with_name(self.name + TEMP_SUFFIX)
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            _crash_at(points.written)
            os.replace(temp, self)
            _crash_at(points.renamed)
            _fsync_folder(self.parent)
        except BaseException as exc:  # a full disk, or a write that raised: no temp file outlives its commit
            with contextlib.suppress(OSError):  # on a read-only disk even this fails; the next run deletes it
                temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise OutputWriteError(f"{self}: could not write ({exc.strerror or exc}); nothing partial was "
                                       "kept, free space or fix permissions and run again") from None
            raise

    def create_exclusive(self, data: bytes) -> bool:
        try:
            fd = os.open(self, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._not_writable(exc) from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def delete(self) -> None:
        try:
            self.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error(exc, "delete") from None

    def leftovers(self) -> list[LocalPath]:
        """`.tmp` files at any depth: output files under images/ or audio/ commit the same way as parts."""
        if not self.is_dir():
            return []
        return list(self.rglob("*" + TEMP_SUFFIX))

    def _error(self, exc: OSError, doing: str) -> StorageError:
        return StorageError(f"{self}: cannot {doing}: {exc.strerror or exc}")

    def _not_writable(self, exc: OSError) -> OutputWriteError:
        return OutputWriteError(f"{self}: the output folder is not writable ({exc.strerror or exc}); "
                                "fix [output] path or its permissions")


def _walk(folder: Path) -> Iterator[Path]:
    """Depth-first, names sorted, hidden names skipped: a stable order without listing every file first."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise StorageError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=True):
            yield from _walk(Path(entry.path))
        elif entry.is_file(follow_symlinks=True):
            yield Path(entry.path)


def _crash_at(point: CrashPoint | None) -> None:
    if point is not None:
        crash_point(point)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
