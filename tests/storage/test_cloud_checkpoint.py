"""The checkpoint in blob storage: parts committed whole, leftovers removed, job.json, the best-effort lock."""

from __future__ import annotations

import json
import os
import socket

import pyarrow as pa
import pytest

from pipeline.checkpoint import LockHeld, OutputFolder
from pipeline.sinks.parquet import PartWriter
from pipeline.storage import StorageError, locate

from .conftest import Azurite, committed_ids, part_infos, put

SCHEMA = pa.schema([pa.field("id", pa.string())])


@pytest.fixture
def out(container: str, azure_env: dict) -> OutputFolder:
    folder = OutputFolder(locate(f"abfs://{container}/out/job"))
    folder.prepare()
    return folder


def test_parts_are_numbered_on_and_empty_leftovers_do_not_count(out: OutputFolder, azurite: Azurite,
                                                                 container: str) -> None:
    writer = PartWriter(out.results, SCHEMA, flush_rows=2, flush_seconds=60)
    for row_id in ("a", "b", "c"):
        writer.add({"id": row_id})
    writer.flush()
    put(azurite.fs, f"{container}/out/job/results/part-000002.parquet", b"")  # an upload a crash cut short
    put(azurite.fs, f"{container}/out/job/failures/part-000001.parquet.tmp", b"x")
    assert "c" in out.ids_in(out.results) and len(out.ids_in(out.results)) == 3
    assert out.remove_temp_files() == 2
    again = PartWriter(out.results, SCHEMA, flush_rows=2, flush_seconds=60)
    again.add({"id": "d"})
    again.flush()
    names = [i.base_name for i in part_infos(azurite.fs, f"{container}/out/job/results")]
    assert names == ["part-000001.parquet", "part-000002.parquet"]
    assert sorted(committed_ids(azurite.fs, f"{container}/out/job/results")) == ["a", "b", "c", "d"]


def test_job_json_round_trip_and_an_empty_object_reads_as_absent(out: OutputFolder, azurite: Azurite,
                                                                 container: str) -> None:
    assert out.read_job() is None
    out.write_job({"name": "job", "runs": []})
    assert out.read_job() == {"name": "job", "runs": []}
    put(azurite.fs, f"{container}/out/job/job.json", b"")
    assert out.read_job() is None


def test_a_live_lock_is_refused_and_released_by_its_owner(out: OutputFolder, container: str) -> None:
    assert out.acquire_lock() is None
    other = OutputFolder(locate(f"abfs://{container}/out/job"))
    with pytest.raises(LockHeld, match="another run holds the lock"):
        other.acquire_lock()
    other.release_lock()  # not its lock: left in place
    assert out.lock_file.exists()
    out.release_lock()
    assert not out.lock_file.exists()


@pytest.mark.parametrize("holder, outcome", [
    ({"pid": 2**22 + 12345, "host": socket.gethostname(), "started": "then"}, "took over a stale lock"),
    (None, "took over a stale lock"),  # an empty object: the lock upload was cut short
    ({"pid": os.getpid(), "host": "another-host", "started": "then"}, LockHeld),
])
def test_stale_and_foreign_locks(out: OutputFolder, azurite: Azurite, container: str,
                                 holder: dict | None, outcome: object) -> None:
    put(azurite.fs, f"{container}/out/job/lock", json.dumps(holder).encode() if holder else b"")
    if outcome is LockHeld:
        with pytest.raises(LockHeld, match=r"delete abfs://.*/lock if that run is gone"):
            out.acquire_lock()
    else:
        assert str(outcome) in (out.acquire_lock() or "")


def test_missing_container_and_bad_key_fail_in_one_line(azurite: Azurite, azure_env: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StorageError, match="container or bucket 'nope' does not exist"):
        OutputFolder(locate("abfs://nope/out")).prepare()
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "QUJD" * 22)
    with pytest.raises(StorageError, match="refused the credentials") as caught:
        OutputFolder(locate("abfs://nope/out")).prepare()
    assert "\n" not in str(caught.value)
