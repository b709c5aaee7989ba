"""What every source yields: rows with a stable id, read lazily."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeline.endpoints.files import FileFacts


@dataclass(frozen=True, slots=True)
class Row:
    """One input row. `error` is set when the row could not be read; it then goes to failures. `files`
    holds what was read of the files the endpoint needs (sources/files.py), by the column naming them."""

    id: str
    fields: dict[str, Any]
    line: int  # 1-based line (JSONL), row number (Parquet) or position (folders)
    error: str | None = None
    files: dict[str, FileFacts] = field(default_factory=dict)


class Source(Protocol):
    """A lazily read input: rows, ids only (cheap), and a row count."""

    path: str

    def rows(self) -> Iterator[Row]: ...

    def ids(self) -> Iterator[tuple[str, int]]: ...

    def count(self) -> int: ...

    def columns(self) -> list[str] | None: ...


def stringify_id(value: Any) -> str | None:
    """Ids may be strings or integers in the input; results always store strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    return None
