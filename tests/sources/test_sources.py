"""Sources stream rows with ids and line numbers; bad lines become rows with an error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError
from pipeline.sources.folder import FolderSource, glob_to_regex
from pipeline.sources.jsonl import JsonlSource
from pipeline.sources.parquet import ParquetSource
from pipeline.storage import in_walk_order

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"


def test_jsonl_lines_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1, "text": "a"}\n\n{"id": "b"\n[1]\n{"text": "x"}\n\xff\xfe\n')
    rows = list(JsonlSource(path, "id").rows())
    assert [r.id for r in rows][:1] == ["1"]
    assert [r.line for r in rows] == [1, 3, 4, 5, 6]
    errors = [r.error for r in rows[1:]]
    assert "malformed JSON" in errors[0] and "expected a JSON object" in errors[1]
    assert "no usable 'id'" in errors[2] and "invalid UTF-8" in errors[3]


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n')
    assert [r.id for r in JsonlSource(path, "id").rows()] == ["a", "b"]
    assert JsonlSource(path, "id").count() == 2


def test_parquet_reads_only_needed_columns(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "big": ["z" * 10, "w"]}), path)
    rows = list(ParquetSource(path, "id", ["text"]).rows())
    assert rows[0].fields == {"id": "a", "text": "x"}
    assert ParquetSource(path, "id", ["text"]).count() == 2


def test_parquet_wrong_schema_is_input_error() -> None:
    with pytest.raises(InputError, match="not found"):
        list(ParquetSource(BAD / "wrong_schema.parquet", "id", ["text"]).rows())


def test_folder_sorted_nested_and_globbed(tmp_path: Path) -> None:
    for name in ["b/2.wav", "a.wav", "b/1.mp3", "b/c/3.WAV", "notes.txt", ".hidden/x.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    ids = [r.id for r in FolderSource(tmp_path, "**/*.{wav,mp3}").rows()]
    assert ids == ["a.wav", "b/1.mp3", "b/2.wav", "b/c/3.WAV"]


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("**/*.wav", "a.wav", True), ("**/*.wav", "x/y/a.wav", True), ("*.wav", "x/a.wav", False),
    ("en/*.wav", "en/a.wav", True), ("**/*.{wav,flac}", "q/a.flac", True), ("a?.wav", "ab.wav", True),
])
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is matches


def test_cloud_listing_in_the_local_walk_order(tmp_path: Path) -> None:
    names = ["b/2.wav", "a.wav", "b/1.mp3", "b/c/3.WAV", "b-c.wav", "b.wav", "notes.txt", ".hidden/x.wav", "b/.y.wav"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    walked = [r.id for r in FolderSource(tmp_path, "**/*").rows()]
    assert in_walk_order(reversed(names)) == walked
    assert walked == ["a.wav", "b/1.mp3", "b/2.wav", "b/c/3.WAV", "b-c.wav", "b.wav", "notes.txt"]
