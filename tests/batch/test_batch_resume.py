"""The CLI in batch mode: kill -9 while polling and at exact crash points, then resume; validate refusals."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import batch_counters, batch_settings, chat_job, chat_rows, read_dataset, run_cli, start_cli

ROWS = 30


def wait_for_batch(out: Path, status: str = "in_progress", timeout: float = 20) -> None:
    """Until batches.json shows a created batch in `status` (the CLI is then polling it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            records = json.loads((out / "batches.json").read_text())["batches"]
        except (FileNotFoundError, ValueError):
            records = []
        if records and records[0]["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"no batch reached {status}")


def assert_exactly_once(out: Path) -> None:
    ids = [r["id"] for r in read_dataset(out / "results")]
    assert max(Counter(ids).values()) == 1
    assert sorted(ids) == [f"r{i:04d}" for i in range(ROWS)]
    assert read_dataset(out / "failures") == []
    assert not list(out.rglob("*.tmp"))


def test_kill_9_while_polling_resumes_polling_without_resubmitting(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, processing_delay_s=30)
    spec = chat_job(tmp_path, emulator.url, chat_rows(ROWS))
    proc = start_cli("run", str(spec), "-q")
    wait_for_batch(tmp_path / "out")
    time.sleep(0.2)  # a few polls
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert read_dataset(tmp_path / "out" / "results") == []
    batch_settings(emulator, processing_delay_s=0)  # the running batch now finishes
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    counters = batch_counters(emulator)
    assert counters["uploads"] == 1 and counters["batches_created"] == 1
    assert_exactly_once(tmp_path / "out")


@pytest.mark.parametrize("point", ["batch.uploaded", "batch.created", "batch.flushed"])
def test_crash_points_then_resume_is_exactly_once_with_one_batch(tmp_path: Path, emulator, point: str) -> None:
    spec = chat_job(tmp_path, emulator.url, chat_rows(ROWS), output={"flush_rows": 7})
    crashed = run_cli("run", str(spec), "-q", env={"PIPELINE_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    counters = batch_counters(emulator)
    assert counters["uploads"] == 1 and counters["batches_created"] == 1  # found again, not created twice
    assert_exactly_once(tmp_path / "out")


def test_sigterm_while_polling_exits_143_and_resumes(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, processing_delay_s=30)
    spec = chat_job(tmp_path, emulator.url, chat_rows(ROWS))
    proc = start_cli("run", str(spec), "-q")
    wait_for_batch(tmp_path / "out")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr
    batch_settings(emulator, processing_delay_s=0)
    assert run_cli("run", str(spec), "-q").returncode == 0
    assert batch_counters(emulator)["batches_created"] == 1
    assert_exactly_once(tmp_path / "out")


def test_transcription_in_batch_mode_is_refused_at_validate(tmp_path: Path) -> None:
    spec = tmp_path / "job.toml"
    spec.write_text('name = "t"\nendpoint = "transcription"\n[input]\npath = "audio"\n'
                    '[service]\nprovider = "emulator"\nmode = "batch"\n')
    proc = run_cli("validate", str(spec))
    assert proc.returncode == 2
    assert 'the Batch API does not take endpoint = "transcription"' in proc.stderr
