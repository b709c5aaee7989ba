"""Jobs reading from and writing to S3 (moto's standalone server on 127.0.0.1, reached through AWS_ENDPOINT_URL
as MinIO or R2 would be): results, resume after a limited run, parts committed whole, clear errors."""

from __future__ import annotations

import gzip
import json
import re
import signal
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec
from pipeline.storage import StorageError, locate

from ..integration.conftest import run_cli
from .conftest import S3_SECRET, MotoS3, assert_finished_output, committed_ids, part_infos, put, rows
from .test_cloud_runs import cloud_job, jsonl, one_line_error, parquet

PART_KEY = r"part-\d{6}\.parquet"
PYARROW_MAJOR = int(pa.__version__.split(".")[0])


def assert_only_whole_parts(moto_s3: MotoS3, bucket: str, killed: bool = False, prefix: str = "out/job") -> list[str]:
    """What S3 lists under the output: job.json and non-empty parts, nothing temporary, no lock unless the
    run was killed; returns the ids."""
    for key, size in moto_s3.keys(bucket):
        if not key.startswith(f"{prefix}/"):
            continue
        name = key[len(prefix) + 1:]
        if not name or name.endswith("/"):  # a directory marker pyarrow leaves after a delete: empty, not a part
            assert size == 0 and not re.search(PART_KEY, name), key
            continue
        allowed = name == "job.json" or (killed and name == "lock")
        assert allowed or re.fullmatch(rf"(results|failures)/{PART_KEY}", name), key
        assert size > 0, f"{key} is empty"
    return committed_ids(moto_s3.fs, f"{bucket}/{prefix}/results")  # each part read on its own: whole


@pytest.mark.parametrize("name, encode", [
    ("in.jsonl", jsonl),
    ("in.jsonl.gz", lambda r: gzip.compress(jsonl(r))),
    ("in.parquet", parquet),
])
def test_embeddings_from_s3_to_s3(tmp_path: Path, moto_s3: MotoS3, bucket: str, s3_env: dict, emulator,
                                  name: str, encode) -> None:
    put(moto_s3.fs, f"{bucket}/data/{name}", encode(rows(120)))
    spec = cloud_job(tmp_path, emulator.url, f"s3://{bucket}/data/{name}", f"s3://{bucket}/out/job")
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    assert str(result.output) == f"s3://{bucket}/out/job"
    assert sorted(assert_only_whole_parts(moto_s3, bucket)) == [r["id"] for r in rows(120)]
    assert_finished_output(moto_s3.fs, f"{bucket}/out/job", tmp_path, "s3")


def test_limited_run_then_resume_is_exactly_once_and_status_reads_s3(
        tmp_path: Path, moto_s3: MotoS3, bucket: str, s3_env: dict, emulator) -> None:
    put(moto_s3.fs, f"{bucket}/in.jsonl", jsonl(rows(90)))
    output = f"s3://{bucket}/out/job"
    spec = cloud_job(tmp_path, emulator.url, f"s3://{bucket}/in.jsonl", output,
                     limits={"batch_size": 5}, flush={"flush_rows": 10})
    first = run_job(load_spec(spec), RunOptions(limit=30))
    assert first.exit_code == 0, first.message
    done = assert_only_whole_parts(moto_s3, bucket)
    assert 30 <= len(done) < 90
    rest = run_job(load_spec(spec))
    assert rest.exit_code == 0, rest.message
    assert rest.summary["rows_skipped"] == len(done)
    ids = assert_only_whole_parts(moto_s3, bucket)
    assert max(Counter(ids).values()) == 1
    assert sorted(ids) == [r["id"] for r in rows(90)]
    status = run_cli("status", output, "--json", env=s3_env)  # a new process: the endpoint from the environment
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == 90


def test_crash_during_an_upload_leaves_only_whole_parts(tmp_path: Path, moto_s3: MotoS3, bucket: str,
                                                        s3_env: dict, emulator) -> None:
    """S3 commits an upload in one step (PutObject / CompleteMultipartUpload): unlike Azure, not even an
    empty object shows before the commit, so a kill -9 mid-upload leaves the earlier parts and nothing else."""
    emulator.configure(latency_ms=40)  # several flushes, so that the crash comes after a committed part
    put(moto_s3.fs, f"{bucket}/in.jsonl", jsonl(rows(100)))
    spec = cloud_job(tmp_path, emulator.url, f"s3://{bucket}/in.jsonl", f"s3://{bucket}/out/job",
                     limits={"batch_size": 2, "concurrency": 4}, flush={"flush_rows": 20, "flush_seconds": 0.3})
    crashed = run_cli("run", str(spec), "-q", env={**s3_env, "PIPELINE_CRASH_AT": "part.uploading:2"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    committed = assert_only_whole_parts(moto_s3, bucket, killed=True)
    assert len(part_infos(moto_s3.fs, f"{bucket}/out/job/results")) == 1  # the second never showed
    if PYARROW_MAJOR >= 21:  # delayed open: a small part is one PutObject, so no upload was even started
        assert moto_s3.multipart_uploads(bucket) == []
    assert 0 < len(committed) < 100
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q", env=s3_env)
    assert rerun.returncode == 0, rerun.stderr
    assert "stale lock" in rerun.stderr  # the killed run's lock object was taken over
    ids = assert_only_whole_parts(moto_s3, bucket)
    assert max(Counter(ids).values()) == 1
    assert sorted(ids) == [r["id"] for r in rows(100)]


def test_missing_bucket_is_one_line_exit_2_without_the_secret(tmp_path: Path, moto_s3: MotoS3, bucket: str,
                                                              s3_env: dict, emulator) -> None:
    put(moto_s3.fs, f"{bucket}/in.jsonl", jsonl(rows(3)))
    spec = cloud_job(tmp_path, emulator.url, f"s3://{bucket}/in.jsonl", "s3://no-such-bucket/out/job")
    result = run_cli("run", str(spec), "-q", env=s3_env)
    line = one_line_error(result)
    assert "'no-such-bucket' does not exist" in line
    assert S3_SECRET not in result.stderr + result.stdout
    spec = cloud_job(tmp_path, emulator.url, "s3://no-such-bucket/in.jsonl", str(tmp_path / "out"))
    assert "s3://no-such-bucket/in.jsonl: input not found" in one_line_error(run_cli("run", str(spec), "-q",
                                                                                     env=s3_env))


def test_endpoint_from_aws_endpoint_url_s3_and_a_bad_one_is_refused(moto_s3: MotoS3, bucket: str, s3_env: dict,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    put(moto_s3.fs, f"{bucket}/x.jsonl", b"{}\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3.endpoint)  # the S3-specific variable wins
    assert locate(f"s3://{bucket}/x.jsonl").read_bytes() == b"{}\n"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "127.0.0.1:9000")
    with pytest.raises(StorageError, match=r"AWS_ENDPOINT_URL_S3: expected http\(s\)://HOST\[:PORT\]"):
        locate(f"s3://{bucket}/x.jsonl")
