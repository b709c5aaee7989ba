"""Jobs reading from and writing to Azure Blob Storage (Azurite): results, resume after kill -9, clear errors."""

from __future__ import annotations

import gzip
import io
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.runner import run_job
from pipeline.spec import load_spec
from pipeline.storage import AZURITE_KEY

from ..integration.conftest import run_cli, start_cli, write_job
from .conftest import Azurite, assert_finished_output, committed_ids, part_infos, put, rows

ROWS = 300


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def parquet(records: list[dict]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue()


def cloud_job(tmp_path: Path, url: str, source: str, output: str, *, limits: dict | None = None,
              flush: dict | None = None) -> Path:
    return write_job(tmp_path, url, input_path=tmp_path / "unused", inputs={"path": source, "text": "text"},
                     output={"path": output, **(flush or {})}, limits=limits)


@pytest.mark.parametrize("name, encode", [
    ("in.jsonl", jsonl),
    ("in.jsonl.gz", lambda r: gzip.compress(jsonl(r))),
    ("in.parquet", parquet),
])
def test_embeddings_from_blob_to_blob(tmp_path: Path, azurite: Azurite, container: str, azure_env: dict,
                                      emulator, name: str, encode) -> None:
    put(azurite.fs, f"{container}/{name}", encode(rows(120)))
    spec = cloud_job(tmp_path, emulator.url, f"abfs://{container}/{name}", f"abfs://{container}/out/job")
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    assert str(result.output) == f"abfs://{container}/out/job"
    ids = committed_ids(azurite.fs, f"{container}/out/job/results")
    assert sorted(ids) == [r["id"] for r in rows(120)]
    assert_finished_output(azurite.fs, f"{container}/out/job", tmp_path, "abfs")


def test_rerun_skips_done_rows_and_status_export_read_the_cloud_output(
        tmp_path: Path, azurite: Azurite, container: str, azure_env: dict, emulator) -> None:
    put(azurite.fs, f"{container}/in.jsonl", jsonl(rows(60)))
    output = f"abfs://{container}/out/job"
    spec = cloud_job(tmp_path, emulator.url, f"abfs://{container}/in.jsonl", output)
    assert run_job(load_spec(spec)).exit_code == 0
    again = run_job(load_spec(spec))
    assert again.summary["rows_skipped"] == 60
    status = run_cli("status", output, "--json", env=azure_env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == 60
    exported = run_cli("export", str(spec), "--to", str(tmp_path / "all.parquet"), env=azure_env)
    assert exported.returncode == 0, exported.stderr
    assert pq.read_table(tmp_path / "all.parquet").column("id").to_pylist() == [r["id"] for r in rows(60)]


def wait_for_parts(azurite: Azurite, folder: str, minimum: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for i in part_infos(azurite.fs, folder) if i.size) >= minimum:
            return
        time.sleep(0.05)
    raise AssertionError("no parts appeared in blob storage")


def assert_exactly_once(azurite: Azurite, folder: str) -> None:
    ids = committed_ids(azurite.fs, folder)
    assert max(Counter(ids).values()) == 1, [i for i, c in Counter(ids).items() if c > 1][:5]
    assert sorted(ids) == [r["id"] for r in rows(ROWS)]
    assert all(i.size for i in part_infos(azurite.fs, folder)), "an empty part was left behind"


def slow_job(tmp_path: Path, azurite: Azurite, container: str, url: str) -> Path:
    put(azurite.fs, f"{container}/in.jsonl", jsonl(rows(ROWS)))
    return cloud_job(tmp_path, url, f"abfs://{container}/in.jsonl", f"abfs://{container}/out/job",
                     limits={"batch_size": 2, "concurrency": 4}, flush={"flush_rows": 20, "flush_seconds": 0.3})


def test_kill_9_mid_run_then_rerun_is_exactly_once(tmp_path: Path, azurite: Azurite, container: str,
                                                   azure_env: dict, emulator) -> None:
    emulator.configure(latency_ms=60)
    spec = slow_job(tmp_path, azurite, container, emulator.url)
    proc = start_cli("run", str(spec), "-q", env=azure_env)
    wait_for_parts(azurite, f"{container}/out/job/results", 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(committed_ids(azurite.fs, f"{container}/out/job/results")) < ROWS
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q", env=azure_env)
    assert rerun.returncode == 0, rerun.stderr
    assert "stale lock" in rerun.stderr  # the killed run's lock object was taken over
    assert_exactly_once(azurite, f"{container}/out/job/results")


def test_crash_during_an_upload_leaves_no_partial_part(tmp_path: Path, azurite: Azurite, container: str,
                                                       azure_env: dict, emulator) -> None:
    emulator.configure(latency_ms=30)
    spec = slow_job(tmp_path, azurite, container, emulator.url)
    crashed = run_cli("run", str(spec), "-q", env={**azure_env, "PIPELINE_CRASH_AT": "part.uploading:2"})
    assert crashed.returncode == -signal.SIGKILL
    parts = part_infos(azurite.fs, f"{container}/out/job/results")
    assert [p.size for p in parts if not p.size], "the upload cut short should show as an empty object"
    committed = committed_ids(azurite.fs, f"{container}/out/job/results")  # every non-empty part is whole
    assert 0 < len(committed) < ROWS
    status = run_cli("status", f"abfs://{container}/out/job", "--json", env=azure_env)
    assert json.loads(status.stdout)["done"] == len(committed)  # the empty object does not count
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q", env=azure_env)
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(azurite, f"{container}/out/job/results")


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_output_container_is_one_line_exit_2(tmp_path: Path, azurite: Azurite, container: str,
                                                     azure_env: dict, emulator) -> None:
    put(azurite.fs, f"{container}/in.jsonl", jsonl(rows(3)))
    spec = cloud_job(tmp_path, emulator.url, f"abfs://{container}/in.jsonl", "abfs://no-such-container/out/job")
    line = one_line_error(run_cli("run", str(spec), "-q", env=azure_env))
    assert "'no-such-container' does not exist" in line


def test_missing_input_container_is_one_line_exit_2(tmp_path: Path, azure_env: dict, emulator) -> None:
    spec = cloud_job(tmp_path, emulator.url, "abfs://no-such-container/in.jsonl", str(tmp_path / "out"))
    line = one_line_error(run_cli("run", str(spec), "-q", env=azure_env))
    assert "abfs://no-such-container/in.jsonl: input not found" in line


def test_bad_credentials_are_one_line_exit_2_without_the_key(tmp_path: Path, azurite: Azurite, container: str,
                                                             azure_env: dict, emulator) -> None:
    put(azurite.fs, f"{container}/in.jsonl", jsonl(rows(3)))
    spec = cloud_job(tmp_path, emulator.url, f"abfs://{container}/in.jsonl", f"abfs://{container}/out/job")
    wrong = "A" * 20 + AZURITE_KEY[20:]
    line = one_line_error(run_cli("run", str(spec), "-q", env=azurite.env(key=wrong)))
    assert "refused the credentials" in line
    assert wrong not in line


def test_connection_string_auth(tmp_path: Path, azurite: Azurite, container: str, azure_env: dict,
                                emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in azure_env:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                       f"BlobEndpoint={azurite.endpoint};")
    put(azurite.fs, f"{container}/in.jsonl", jsonl(rows(5)))
    spec = cloud_job(tmp_path, emulator.url, f"abfs://{container}/in.jsonl", f"az://{container}/out/job")
    assert run_job(load_spec(spec)).exit_code == 0
    assert len(committed_ids(azurite.fs, f"{container}/out/job/results")) == 5
