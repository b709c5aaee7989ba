"""File outputs (images, audio, sidecars): temp name, fsync, rename on a disk; one whole upload in object
storage (see sinks/cloud.py). The row that points to a file is committed only after the file is complete,
so a crash never leaves a file a resume trusts. Paths in results are relative to the output folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.sinks.parquet import OutputWriteError

if TYPE_CHECKING:
    from pipeline.storage import Location


def write_file_atomically(path: Path, data: bytes) -> Path:
    temp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(CrashPoint.FILE_WRITTEN)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # on a read-only disk even this fails; the next run deletes it
            temp.unlink(missing_ok=True)
        raise OutputWriteError(f"{path}: could not write ({exc.strerror or exc}); free space or fix "
                               "permissions and run again") from None
    return path


def safe_relative(name: str) -> str:
    """A row id as a relative file path that cannot climb out of the output folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


class OutputFiles:
    """Where an endpoint's files go: the output folder on disk (temp + rename) or the output prefix in object
    storage (one whole upload per file)."""

    def __init__(self, root: Path | Location, download: Callable[[str], Awaitable[bytes]]) -> None:
        self.root = root
        self._download = download

    async def download(self, url: str) -> bytes:
        return await self._download(url)

    async def save(self, relative: str, data: bytes) -> Path | Location:
        target = self.root / safe_relative(relative)
        if isinstance(target, Path):
            return await asyncio.to_thread(write_file_atomically, target, data)
        from pipeline.sinks.cloud import upload_whole  # local jobs never load the storage clients

        return await asyncio.to_thread(upload_whole, target, data, CrashPoint.FILE_WRITTEN)
