"""A folder of files (audio, images) walked in sorted order and matched by a glob: a local folder, or a
prefix in object storage (listed in one call, read object by object only when a request is built)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.base import Row
from pipeline.storage import StoragePath, as_storage


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`**/` any folders, `*` and `?` within one name, `{a,b}` alternatives."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        char = pattern[i]
        if char == "*":
            out.append(".*" if pattern.startswith("**", i) else "[^/]*")
            i += 2 if pattern.startswith("**", i) else 1
            continue
        if char == "{" and "}" in pattern[i:]:
            end = pattern.index("}", i)
            out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1:end].split(",")) + ")")
            i = end + 1
            continue
        out.append("[^/]" if char == "?" else re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


class FolderSource:
    def __init__(self, path: Path | StoragePath, glob: str) -> None:
        self._root = as_storage(path)
        self.path = str(self._root)
        self._glob = glob
        self._match = glob_to_regex(glob)

    def _all(self) -> Iterator[tuple[str, str]]:
        """(relative path, where the file is: a local path or an object URI), in walk order."""
        for relative in self._root.walk_files():
            yield relative, str(self._root / relative)

    def _files(self) -> Iterator[tuple[str, str]]:
        for relative, file in self._all():
            if self._match.match(relative):
                yield relative, file

    def rows(self) -> Iterator[Row]:
        for number, (relative, file) in enumerate(self._files(), start=1):
            yield Row(relative, {"path": file, "relpath": relative}, number)

    def ids(self) -> Iterator[tuple[str, int]]:
        for number, (relative, _) in enumerate(self._files(), start=1):
            yield relative, number

    def count(self) -> int:
        return sum(1 for _ in self._files())

    def columns(self) -> list[str]:
        return ["path", "relpath"]
