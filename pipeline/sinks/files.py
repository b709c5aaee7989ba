"""File outputs (images, audio, sidecars), committed whole through storage/ (temp name, fsync, rename on a
disk; one whole upload in object storage). The row that points to a file is committed only after the
file is complete, so a crash never leaves a file a resume trusts. Paths in results are relative to the
output folder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.crashpoints import CrashPoint
from pipeline.endpoints.files import safe_relative
from pipeline.storage import CommitPoints, StoragePath, as_storage, content

FILE_COMMIT = CommitPoints(written=CrashPoint.FILE_WRITTEN, uploading=CrashPoint.FILE_WRITTEN)


class OutputFiles:
    """Where an endpoint's files go: under the output folder, local or in object storage."""

    def __init__(self, root: Path | StoragePath, download: Callable[[str], Awaitable[bytes]]) -> None:
        self.root = as_storage(root)
        self._download = download

    async def download(self, url: str) -> bytes:
        return await self._download(url)

    async def save(self, relative: str, data: bytes) -> StoragePath:
        target = self.root / safe_relative(relative)
        await asyncio.to_thread(target.commit, content(data), FILE_COMMIT)
        return target
