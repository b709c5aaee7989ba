"""Storage for inputs, outputs and checkpoints, local or in object storage, behind one interface.

    base.py     StoragePath (the interface), CommitPoints, StorageError, OutputWriteError
    local.py    LocalPath: a local disk; commits are temp file, fsync, rename, folder fsync
    cloud.py    Location: Azure Blob / ADLS, S3, GCS through pyarrow; commits are one upload
    config.py   storage URIs, and the credentials and endpoints read from the environment

`storage_at` turns what a job spec names (a local path, or a URI) into a StoragePath.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from pipeline.storage.base import (
    NO_POINTS,
    CommitPoints,
    OutputWriteError,
    StorageError,
    StoragePath,
    Writer,
    content,
    first_line,
    in_walk_order,
)
from pipeline.storage.cloud import Location, locate, storage_error
from pipeline.storage.config import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzureConfig,
    S3Config,
    check_uri,
    is_uri,
)
from pipeline.storage.local import LocalPath

__all__ = [
    "AZURITE_ACCOUNT", "AZURITE_KEY", "NO_POINTS", "AzureConfig", "CommitPoints", "LocalPath", "Location",
    "OutputWriteError", "S3Config", "StorageError", "StoragePath", "Writer", "as_storage", "check_uri", "content",
    "first_line", "in_walk_order", "is_uri", "locate", "storage_at", "storage_error",
]


def storage_at(uri: str | None, path: Path) -> StoragePath:
    """Where a spec's `[input]` or `[output]` path is: the URI's object storage, else the local path."""
    return locate(uri) if uri else LocalPath(path)


def as_storage(where: Path | StoragePath) -> StoragePath:
    """A StoragePath for a caller's folder: a plain Path (library callers, tests) is a local one."""
    if isinstance(where, LocalPath | Location):
        return where
    return LocalPath(cast(Path, where))  # mypy cannot narrow a union with a Protocol
