"""A folder of files (audio, images) walked in sorted order and matched by a glob: a local folder, or a
prefix in object storage (listed in one call, read object by object only when a request is built)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.sources.base import Row

if TYPE_CHECKING:
    from pipeline.storage import Location


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


def in_walk_order(relatives: Iterable[str]) -> list[str]:
    """Relative paths in the order of a depth-first walk with names sorted (the local folder's order),
    without hidden files or anything in a hidden folder."""
    visible = (r for r in relatives if not any(part.startswith(".") for part in r.split("/")))
    return sorted(visible, key=lambda r: r.split("/"))


class FolderSource:
    def __init__(self, path: Path | Location, glob: str) -> None:
        self.path = str(path)
        self._root = path
        self._glob = glob
        self._match = glob_to_regex(glob)

    def _walk(self, folder: Path) -> Iterator[Path]:
        """Depth-first, names sorted: the order is stable between runs without listing all files first."""
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{folder}: cannot list the input folder: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=True):
                yield from self._walk(Path(entry.path))
            elif entry.is_file(follow_symlinks=True):
                yield Path(entry.path)

    def _all(self) -> Iterator[tuple[str, str]]:
        """(relative path, where the file is: a local path or an object URI), in walk order."""
        root = self._root
        if isinstance(root, Path):
            for file in self._walk(root):
                yield file.relative_to(root).as_posix(), str(file)
        else:
            for relative in in_walk_order(root.tree()):
                yield relative, str(root / relative)

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
