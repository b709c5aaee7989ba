"""Rows counted are rows committed: many short runs on a busy host, and part writes that fail.

A part write handed to the writer thread used to be dropped when the run's end cancelled the flusher
before that thread had started it (run_in_executor's cancel). On an idle machine the thread starts at
once; on a busy one (CPUs loaded, a busy thread in the host process, as in a notebook or Airflow) about
one short run in eight lost a part with exit 0. Every run is checked here, and the runner checks it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import pipeline.sinks.parquet as parquet
from pipeline.core.exitcodes import ExitCode
from pipeline.emulator.server import EmulatorThread
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from ..integration.conftest import corpus, write_job, write_rows
from .conftest import assert_exactly_once, closed_ids

RUNS = int(os.environ.get("PIPELINE_STRESS_RUNS", "12"))  # `make soak` runs many more
ROWS = 40


@pytest.fixture
def busy_host() -> Iterator[None]:
    """Both cores loaded by other processes, and a thread of this process that never sleeps."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(400_000))  # C work that holds the GIL for ms at a time, as numpy or pandas do

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join()
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_short_runs_on_a_busy_host_commit_every_row_they_count(tmp_path: Path, emulator: EmulatorThread,
                                                              busy_host: None) -> None:
    rows = corpus(ROWS)
    for run in range(RUNS):
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        spec = write_job(folder, emulator.url, input_path=write_rows(folder / "in.jsonl", rows),
                         limits={"batch_size": 2, "concurrency": 8},
                         output={"flush_rows": 4, "flush_seconds": 0.05})
        result = run_job(load_spec(spec), RunOptions())
        committed = closed_ids(folder / "out" / "results")
        assert result.exit_code == 0, (run, result.message)
        assert len(committed) == result.summary["rows_succeeded"] == ROWS, (run, len(committed))
        assert_exactly_once(folder / "out", [r["id"] for r in rows])


def test_a_part_write_that_raises_stops_the_run_and_loses_nothing(tmp_path: Path, emulator: EmulatorThread,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A value pyarrow refuses (or any bug) in one part: the run stops with a message and a non-zero
    exit, every row of that part is sent again by the next run, and the flusher does not die silently."""
    real = parquet.records_to_table
    calls = {"n": 0}

    def second_part_breaks(records: list[dict], schema: pa.Schema) -> pa.Table:
        calls["n"] += 1
        if calls["n"] == 2:
            raise pa.ArrowInvalid("Could not convert 'x' with type str: tried to convert to double")
        return real(records, schema)

    rows = corpus(120)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 4, "concurrency": 4}, output={"flush_rows": 20, "flush_seconds": 5})
    monkeypatch.setattr(parquet, "records_to_table", second_part_breaks)
    first = run_job(load_spec(spec))
    assert first.exit_code == ExitCode.INTERNAL, first.message
    assert "could not write part" in (first.message or "") and "ArrowInvalid" in (first.message or "")
    assert "not committed" in (first.message or "")
    kept = closed_ids(tmp_path / "out" / "results")
    assert 0 < len(kept) < len(rows)
    monkeypatch.setattr(parquet, "records_to_table", real)
    second = run_job(load_spec(spec))
    assert second.exit_code == 0, second.message
    assert second.summary["rows_succeeded"] == len(rows) - len(kept)
    assert_exactly_once(tmp_path / "out", [r["id"] for r in rows])
