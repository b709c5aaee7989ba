"""Reading the files rows name, for the endpoints that need them (endpoints/files.py's FileNeed).

Runs where rows are read (the reader thread): a vision input's image read whole, an audio file's size
and first bytes for its checks, locally or from object storage. A file that cannot be read is not an
exception here: its FileFacts carry the reason, and the endpoint fails the row with it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.endpoints.files import FileFacts, FileNeed
from pipeline.sources.base import Row

if TYPE_CHECKING:
    from pipeline.storage import Location


class RowFiles:
    """Reads the FileNeeds of rows; input prefixes in storage are located once."""

    def __init__(self) -> None:
        self._roots: dict[str, Location] = {}

    def attach(self, row: Row, needs: list[FileNeed]) -> Row:
        """The row with what its needs read, under each need's column."""
        if not needs:
            return row
        return dataclasses.replace(row, files={**row.files, **{need.column: self.read(need) for need in needs}})

    def read(self, need: FileNeed) -> FileFacts:
        if need.root is not None:
            return self._read_object(self._root(need.root) / need.path, need)
        return read_local(Path(need.path), need)

    def _root(self, uri: str) -> Location:
        if uri not in self._roots:
            from pipeline.storage import locate  # local jobs never need the storage clients

            self._roots[uri] = locate(uri)
        return self._roots[uri]

    def _read_object(self, location: Location, need: FileNeed) -> FileFacts:
        from pipeline.storage import StorageError

        try:
            if need.whole:
                data = location.read_all()
                return FileFacts(location.name, str(location), len(data), data[:need.head_bytes], data, in_storage=True)
            size, head = location.size_and_head(need.head_bytes)
        except StorageError as exc:
            return FileFacts(location.name, str(location), 0, error=str(exc), in_storage=True)
        return FileFacts(location.name, str(location), size, head, read=location.read_all, in_storage=True)


def read_local(path: Path, need: FileNeed) -> FileFacts:
    """A local file's size and first bytes (or all of it); the reason when it cannot be read."""
    try:
        if need.whole:  # whatever open() reads (a pipe too): its size is what was read
            data = path.read_bytes()
            return FileFacts(path.name, str(path), len(data), data[:need.head_bytes], data)
        size = os.stat(path).st_size
        if not path.is_file():  # a size and first bytes are a regular file's only
            return FileFacts(path.name, str(path), size, error="not a regular file", regular=False)
        with open(path, "rb") as handle:
            head = handle.read(need.head_bytes)
    except OSError as exc:
        return FileFacts(path.name, str(path), 0, error=str(exc.strerror or exc))
    return FileFacts(path.name, str(path), size, head)
