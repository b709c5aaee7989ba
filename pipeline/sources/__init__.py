"""Inputs: JSONL (.gz), Parquet, folders. `open_source` picks one from the spec."""

from __future__ import annotations

from pipeline.errors import InputError
from pipeline.sources.base import Row, Source
from pipeline.sources.folder import FolderSource
from pipeline.sources.jsonl import JsonlSource
from pipeline.sources.parquet import ParquetSource
from pipeline.spec import InputSpec, OutputSpec
from pipeline.storage import StoragePath, storage_at

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
    """The input the spec names: a table (JSONL or Parquet) or a folder of files, local or in object storage."""
    where = storage_at(spec.uri, spec.path)
    if not where.exists():
        hint = "and the container" if spec.uri else "(relative paths start at the working folder)"
        raise InputError(f"{where}: input not found; check [input] path {hint}")
    if spec.is_folder():
        return FolderSource(where, spec.glob)
    return _open_table(where, spec, output)


def _open_table(path: StoragePath, spec: InputSpec, output: OutputSpec | None) -> Source:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json.gz", ".ndjson.gz")):
        return JsonlSource(path, spec.id)
    if name.endswith((".parquet", ".pq")):
        return ParquetSource(path, spec.id, mapped_columns(spec, output))
    raise InputError(f"{path}: unsupported input type; use .jsonl, .jsonl.gz, .parquet or a folder")
