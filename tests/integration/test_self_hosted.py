"""A self-hosted server: no quota, one worker, latency proportional to the inputs, and work that goes
on after the client gave up (the emulator's compute-bound mode)."""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.emulator.server import EmulatorThread
from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import corpus, read_dataset, result_ids, write_job, write_rows


def run_against(emulator: EmulatorThread, tmp_path: Path, rows: int, concurrency: int = 8) -> None:
    """Run `rows` with the default batch_size (256) and a 2 s timeout; every row must succeed."""
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(rows)),
                     limits={"timeout_s": 2, "max_attempts": 3, "concurrency": concurrency})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, (result.message, result.summary)
    assert sorted(result_ids(tmp_path / "out")) == sorted(r["id"] for r in corpus(rows))
    assert read_dataset(tmp_path / "out" / "failures") == []


def test_a_server_slower_than_the_timeout_for_a_full_batch_fails_no_row(tmp_path: Path,
                                                                        emulator: EmulatorThread) -> None:
    """256 inputs take the server 2.56 s, longer than the 2 s timeout: every full batch used to time
    out on every attempt, each retry queued behind the abandoned ones, and all 400 rows failed. Now
    requests carry what the server computes well within the timeout, and as many go at once as keep
    it busy without a long queue: every row succeeds and the server computes nothing twice."""
    emulator.configure(compute_ms_per_input=10.0)
    run_against(emulator, tmp_path, 400)
    compute = emulator.stats()["compute"]
    # No timeout: nothing the server computed was thrown away, and every input was computed once (4 s).
    assert compute["abandoned"] == 0 and compute["computed"] == compute["delivered"], compute
    assert abs(compute["busy_s"] - 400 * 0.010) < 1e-6, compute


def test_a_server_that_slows_down_sixfold_mid_run_fails_no_row(tmp_path: Path, emulator: EmulatorThread) -> None:
    """At 2 ms per input a full batch fits the timeout; after 1 s (about 500 rows) the server needs 12 ms
    (3.1 s for 256), and the batches sent from then on (300 rows, more than a full batch) used to time out
    on every attempt. Latency climbs: fewer inputs
    go at once and per request, an attempt that still times out is retried only once the server is
    done with it, and no row fails."""
    emulator.configure(compute_ms_per_input=2.0)
    slower = threading.Timer(1.0, lambda: emulator.configure(compute_ms_per_input=12.0))
    slower.start()
    try:
        run_against(emulator, tmp_path, 800, concurrency=2)
    finally:
        slower.cancel()
    compute = emulator.stats()["compute"]
    assert compute["abandoned"] <= 3, compute
