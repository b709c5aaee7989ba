"""Cloud parts without a service: a failed upload is closed and deleted, never left as a part that counts."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.sinks.parquet import OutputWriteError, closed_parts, write_part
from pipeline.storage import Location


class BrokenStream:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def write(self, data: Any) -> None:
        self.log.append("write")
        raise OSError("connection reset by peer")

    def close(self) -> None:
        self.log.append("close")


class BrokenUploads:
    """Just enough of a FileSystem: every upload fails halfway."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def open_output_stream(self, path: str, compression: Any = None) -> BrokenStream:
        return BrokenStream(self.log)

    def delete_file(self, path: str) -> None:
        self.log.append(f"delete {path}")


def test_a_failed_upload_is_closed_then_deleted() -> None:
    fs = BrokenUploads()
    folder = Location(fs, "c/out/results", "abfs://c/out/results")  # type: ignore[arg-type]
    with pytest.raises(OutputWriteError, match=r"abfs://c/out/results/part-000007.parquet: could not upload"):
        write_part(folder, 7, pa.table({"id": ["a"]}))
    assert fs.log == ["write", "close", "delete c/out/results/part-000007.parquet"]


def test_only_non_empty_parts_are_closed(tmp_path) -> None:
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "part-000001.parquet")
    (tmp_path / "part-000002.parquet").write_bytes(b"")  # what Azure shows while an upload is open
    (tmp_path / "part-000003.parquet.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a part")
    folder = Location(pafs.LocalFileSystem(), str(tmp_path), f"file://{tmp_path}")
    assert [p.name for p in closed_parts(folder)] == ["part-000001.parquet"]
    assert sorted(p.name for p in folder.leftovers()) == ["part-000002.parquet", "part-000003.parquet.tmp"]
