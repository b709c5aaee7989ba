"""kill -9 at several points, SIGTERM drain: results hold every id exactly once after a rerun."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import read_dataset, result_ids, run_cli, start_cli, write_job, write_rows

ROWS = 400


def slow_job(tmp_path: Path, url: str) -> Path:
    rows = [{"id": f"r{i:04d}", "text": f"passage {i}"} for i in range(ROWS)]
    return write_job(tmp_path, url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 2, "concurrency": 4}, output={"flush_rows": 20, "flush_seconds": 0.3})


def wait_for_parts(out: Path, minimum: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((out / "results").glob("part-*.parquet"))) >= minimum:
            return
        time.sleep(0.02)
    raise AssertionError("no parts appeared")


def assert_exactly_once(out: Path) -> None:
    ids = result_ids(out)
    counts = Counter(ids)
    assert max(counts.values()) == 1, [i for i, c in counts.items() if c > 1][:5]
    assert sorted(ids) == [f"r{i:04d}" for i in range(ROWS)]
    for part in (out / "results").glob("part-*.parquet"):
        pq.read_table(part)  # every closed part is whole
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("after_parts", [0, 1, 3, 6])
def test_kill_9_then_resume_is_exactly_once(tmp_path: Path, emulator, after_parts: int) -> None:
    emulator.configure(latency_ms=60)
    spec = slow_job(tmp_path, emulator.url)
    proc = start_cli("run", str(spec), "-q")
    if after_parts:
        wait_for_parts(tmp_path / "out", after_parts)
    else:
        time.sleep(0.8)  # during start-up or the first requests
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(result_ids(tmp_path / "out")) < ROWS
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(tmp_path / "out")


def test_sigterm_drains_and_exits_143(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=60)
    spec = slow_job(tmp_path, emulator.url)
    proc = start_cli("run", str(spec), "-q")
    wait_for_parts(tmp_path / "out", 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr
    partial = result_ids(tmp_path / "out")
    assert 0 < len(partial) < ROWS
    assert not (tmp_path / "out" / "lock").exists()
    emulator.configure(latency_ms=0)
    assert run_cli("run", str(spec), "-q").returncode == 0
    assert_exactly_once(tmp_path / "out")
    assert read_dataset(tmp_path / "out" / "failures") == []


def test_sigint_exits_130(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=60)
    spec = slow_job(tmp_path, emulator.url)
    proc = start_cli("run", str(spec), "-q")
    wait_for_parts(tmp_path / "out", 1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
