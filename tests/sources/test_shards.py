"""Shards cover every row of the input exactly once, in order, with the line numbers of the whole input."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.sources.jsonl as jsonl
from pipeline.sources.folder import FolderSource
from pipeline.sources.jsonl import JsonlSource
from pipeline.sources.parquet import ParquetSource
from pipeline.sources.shards import open_shard, plan_shards


def rows_of(source) -> list[tuple[str, int]]:
    return [(row.id, row.line) for row in source.rows()]


def sharded(source, total: int, count: int) -> list[tuple[str, int]]:
    shards = plan_shards(source, total, count)
    assert len(shards) <= count
    return [pair for shard in shards for pair in rows_of(open_shard(source, shard))]


@pytest.mark.parametrize("chunk", [1 << 20, 97])  # a small read chunk puts cuts and lines across chunks
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 64])
def test_jsonl_byte_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, count: int) -> None:
    monkeypatch.setattr(jsonl, "READ_CHUNK", chunk)
    monkeypatch.setattr("pipeline.sources.shards.READ_CHUNK", chunk)
    rng = random.Random(count)
    lines = []
    for i in range(300):
        lines.append(json.dumps({"id": i, "text": "x" * rng.randint(0, 400)}))
        if rng.random() < 0.05:
            lines.append("")  # blank lines count in the numbering but are no rows
    lines.append("{not json")
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines))  # no newline at the end
    source = JsonlSource(path, "id")
    whole = rows_of(source)
    assert sharded(source, len(whole), count) == whole
    assert all(s.by_bytes for s in plan_shards(source, len(whole), count))


def test_gzip_jsonl_by_position(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps({"id": i}) + "\n" for i in range(50)).encode()))
    source = JsonlSource(path, "id")
    assert sharded(source, 50, 4) == rows_of(source)


@pytest.mark.parametrize(("group", "count"), [(130, 4), (130, 9), (1000, 3), (7, 5)])
def test_parquet_row_groups_and_ranges(tmp_path: Path, group: int, count: int) -> None:
    table = pa.table({"id": [str(i) for i in range(1000)], "text": ["t"] * 1000})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=group)
    source = ParquetSource(tmp_path / "in.parquet", "id", ["text"])
    assert sharded(source, 1000, count) == rows_of(source)
    shards = plan_shards(source, 1000, count)
    assert sum(open_shard(source, s).count() for s in shards) == 1000
    if 1000 // group >= count:  # enough groups: every cut on a group boundary
        assert all(s.start % group == 0 for s in shards)


def test_folder_by_position(tmp_path: Path) -> None:
    for i in range(13):
        (tmp_path / f"{i:02d}.wav").write_bytes(b"")
    source = FolderSource(tmp_path, "*.wav")
    assert sharded(source, 13, 4) == rows_of(source)
