"""Inputs: JSONL (.gz), Parquet, folders. `open_source` picks one from the spec."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.sources.base import Row, Source
from pipeline.sources.folder import FolderSource
from pipeline.sources.jsonl import JsonlSource
from pipeline.sources.parquet import ParquetSource
from pipeline.spec import InputSpec, OutputSpec

if TYPE_CHECKING:
    from pipeline.storage import Location

__all__ = ["Row", "Source", "mapped_columns", "open_source"]


def mapped_columns(spec: InputSpec, output: OutputSpec | None = None) -> list[str]:
    """Input columns a job reads: the mapping, template placeholders and `keep`."""
    import string

    names = [spec.text, spec.prompt, spec.messages, spec.image, spec.file]
    if spec.template:
        names += [field for _, field, _, _ in string.Formatter().parse(spec.template) if field]
    if output is not None:
        names += list(output.keep)
    return [n for n in dict.fromkeys(names) if n]


def open_source(spec: InputSpec, output: OutputSpec | None = None) -> Source:
    if spec.uri is not None:
        return _open_object(spec.uri, spec, output)
    path = spec.path
    if not path.exists():
        raise InputError(f"{path}: input not found; check [input] path (relative paths start at the working folder)")
    if path.is_dir():
        return FolderSource(path, spec.glob)
    return _open_table(path, spec, output)


def _open_object(uri: str, spec: InputSpec, output: OutputSpec | None) -> Source:
    """An input in cloud storage: a table read as a stream like a local file, or a folder (prefix) of files."""
    from pipeline.storage import locate  # local jobs never need the storage clients

    location = locate(uri)
    if not location.exists():
        raise InputError(f"{location}: input not found; check [input] path and the container")
    if spec.is_folder():
        return FolderSource(location, spec.glob)
    return _open_table(location, spec, output)


def _open_table(path: Path | Location, spec: InputSpec, output: OutputSpec | None) -> Source:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json.gz", ".ndjson.gz")):
        return JsonlSource(path, spec.id)
    if name.endswith((".parquet", ".pq")):
        return ParquetSource(path, spec.id, mapped_columns(spec, output))
    raise InputError(f"{path}: unsupported input type; use .jsonl, .jsonl.gz, .parquet or a folder")
