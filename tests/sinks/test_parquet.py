"""Part files are whole, numbered on from existing parts, and vectors are stored as list<float32>."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.sinks.parquet import PartWriter, closed_parts, records_to_table

SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("embedding", pa.list_(pa.float32()))])


def test_vectors_become_list_float32() -> None:
    records = [{"id": "a", "embedding": np.array([1, 2], "<f4")}, {"id": "b", "embedding": np.array([3, 4], "<f4")}]
    table = records_to_table(records, SCHEMA)
    assert table.column("embedding").to_pylist() == [[1.0, 2.0], [3.0, 4.0]]


def test_parts_numbered_on_and_flushed_by_count(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, SCHEMA, flush_rows=2, flush_seconds=60)
    writer.add({"id": "a", "embedding": np.zeros(2, "<f4")})
    assert not writer.due()
    writer.add({"id": "b", "embedding": np.zeros(2, "<f4")})
    assert writer.due()
    writer.flush()
    again = PartWriter(tmp_path, SCHEMA, flush_rows=2, flush_seconds=60)
    again.add({"id": "c", "embedding": np.zeros(2, "<f4")})
    again.flush()
    parts = closed_parts(tmp_path)
    assert [p.name for p in parts] == ["part-000001.parquet", "part-000002.parquet"]
    assert pq.read_table(tmp_path).num_rows == 3
    assert not list(tmp_path.glob("*.tmp"))
