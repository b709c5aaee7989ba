"""Benchmark: a 100k-row chat job in batch mode against an emulator in another process.

    .venv/bin/python tests/batch/bench_batch_mode.py [--rows N]

Prints wall time, where it went (our file handling vs waiting on the emulator), and the peak
RSS of this process (the pipeline; the emulator's memory is its own). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.batch.api import BatchAPI
from pipeline.batch.engine import BatchJob
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

SPENT: defaultdict[str, float] = defaultdict(float)


def timed(owner: type, name: str, label: str) -> None:
    """Wrap owner.name (sync or async) to add its wall time to SPENT[label]."""
    original = getattr(owner, name)
    if hasattr(original, "__code__") and original.__code__.co_flags & 0x80:  # a coroutine function

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                SPENT[label] += time.perf_counter() - started
    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                SPENT[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "emulator", "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        settings = json.dumps({"processing_delay_s": 0}).encode()
        request = urllib.request.Request(url + "/_emulator/batches", data=settings,
                                         headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_spec(folder: Path, url: str, rows: int) -> Path:
    with open(folder / "in.jsonl", "w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"id": f"r{i:06d}", "text": f"Question {i}: how do I sort a list of "
                                     f"tuples by their second item in Python, stably?"}) + "\n")
    spec = folder / "job.toml"
    spec.write_text(f'name = "bench-batch"\nendpoint = "chat"\n[input]\npath = "{folder / "in.jsonl"}"\n'
                    f'prompt = "text"\n[output]\npath = "{folder / "out"}"\nflush_rows = 20000\n'
                    f'[service]\nprovider = "emulator"\nbase_url = "{url}"\ndeployment = "gpt-4o-mini"\n'
                    f'mode = "batch"\npoll_interval_s = 0.5\n[params]\nmax_tokens = 40\n')
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    timed(BatchJob, "_write_inputs", "write input files")
    timed(BatchAPI, "upload", "upload")
    timed(BatchAPI, "create", "create")
    timed(BatchJob, "_poll", "wait for the batch (emulator)")
    timed(BatchAPI, "download", "download output")
    timed(BatchJob, "_collect", "collect (incl. download)")
    timed(BatchJob, "flush", "write Parquet parts")
    with tempfile.TemporaryDirectory() as work, emulator_process() as url:
        spec = load_spec(write_spec(Path(work), url, args.rows))
        started = time.perf_counter()
        result = run_job(spec, RunOptions())
        wall = time.perf_counter() - started
    ours = SPENT["write input files"] + SPENT["collect (incl. download)"] - SPENT["download output"]
    print(f"rows {args.rows}, exit code {result.exit_code}, succeeded {result.summary['rows_succeeded']}")
    print(f"wall time {wall:.1f} s ({args.rows / wall:,.0f} rows/s)")
    for label, seconds in SPENT.items():
        print(f"  {label:32s} {seconds:7.2f} s")
    print(f"  {'our file handling (write + parse)':32s} {ours:7.2f} s")
    print(f"  {'transfers (upload + download)':32s} {SPENT['upload'] + SPENT['download output']:7.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0 if result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
