"""Transient faults are retried until they pass; permanent errors are not; auth errors abort."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, run_cli, write_job, write_rows

TRANSIENT = ["500", "502", "503", "504", "408", "409", "429", "429bare", "drop", "truncate", "invalidjson", "hang"]


def test_each_transient_fault_is_retried(tmp_path: Path, emulator) -> None:
    emulator.configure(hang_s=1.5)  # longer than the timeout: a hang is cut off and retried
    rows = [{"id": kind, "text": f"row with [[fault:{kind}:2]] inside"} for kind in TRANSIENT]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, params={"max_tokens": 20},
                     service={"deployment": "gpt-4o-mini"},
                     limits={"timeout_s": 1, "max_attempts": 4, "max_retry_wait_s": 0.2})  # waits are not tested
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, (result.message, read_dataset(tmp_path / "out" / "failures"))
    records = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    assert set(records) == set(TRANSIENT)
    assert all(r["attempts"] == 3 for r in records.values()), {k: r["attempts"] for k, r in records.items()}
    assert sum(result.summary["retries"].values()) == 2 * len(TRANSIENT)


def test_retries_stop_at_max_attempts(tmp_path: Path, emulator) -> None:
    rows = [{"id": "x", "text": "[[fault:503:always]]"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"max_attempts": 3, "max_retry_wait_s": 0.2})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    (failure,) = read_dataset(tmp_path / "out" / "failures")
    assert failure["attempts"] == 3 and failure["status"] == 503
    assert failure["error_class"] == "InternalServerError" and failure["request_id"]


@pytest.mark.parametrize(("marker", "status", "cls"), [
    ("[[fault:400:always]]", 400, "BadRequestError"), ("[[fault:413:always]]", 413, "APIStatusError"),
    ("[[fault:422:always]]", 422, "UnprocessableEntityError"), ("BLOCKME", 400, "ContentFilterError"),
])
def test_permanent_errors_are_not_retried(tmp_path: Path, emulator, marker: str, status: int, cls: str) -> None:
    rows = [{"id": "ok", "text": "a fine question"}, {"id": "bad", "text": f"question {marker}"}]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 10})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    assert [r["id"] for r in read_dataset(tmp_path / "out" / "results")] == ["ok"]
    (failure,) = read_dataset(tmp_path / "out" / "failures")
    assert (failure["id"], failure["status"], failure["error_class"], failure["attempts"]) == ("bad", status, cls, 1)
    assert failure["request_id"]
    if cls == "ContentFilterError":
        assert failure["error_code"] == "content_filter" and failure["detail"]


def test_wrong_key_aborts_within_a_few_requests(tmp_path: Path, emulator) -> None:
    emulator.configure(api_key="the-right-key")
    rows = [{"id": f"r{i}", "text": f"text {i}"} for i in range(200)]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     service={"auth": "api-key", "api_key_env": "TEST_KEY"}, limits={"batch_size": 1})
    proc = run_cli("run", str(spec), "-q", env={"TEST_KEY": "a-wrong-key-123"})
    assert proc.returncode == 3, proc.stderr
    assert "check the API key" in proc.stderr
    assert "a-wrong-key-123" not in proc.stderr + proc.stdout
    assert emulator.stats()["requests"] <= 16


def test_missing_deployment_aborts(tmp_path: Path, emulator) -> None:
    emulator.configure(deployments=["text-embedding-3-small"])
    rows = [{"id": f"r{i}", "text": f"text {i}"} for i in range(100)]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     service={"deployment": "no-such-deployment"}, limits={"batch_size": 1})
    proc = run_cli("run", str(spec), "-q")
    assert proc.returncode == 3
    assert 'check deployment = "no-such-deployment"' in proc.stderr
    assert emulator.stats()["requests"] <= 16
