"""Batch mode (GitHub issue 8): a 100k-row chat job through the emulator's Files and Batch APIs.

The job runs in a child process (`python -c CHILD`, which imports what `pipeline run` does and no
more) that wraps the batch engine's steps in timers, runs the job as `pipeline run` would and
writes where its wall time went to a report. The emulator runs in its own process with no added
processing delay, so its simulated batch processing is the time it takes to answer every line
(about 0.15 ms a line on this machine; a real batch takes minutes to hours): the hardest case for
our share.

Figures:
- the child's wall time against the emulator's batch processing (the time the child spent
  polling a created batch until it ended, with a 0.05 s poll interval);
- our handling's share of the wall time: everything but that wait (interpreter start-up, writing
  the input files, upload, download, parsing the output lines, writing Parquet parts). "Dominated
  by the emulator's processing" is read as: our share under a half;
- the child's peak RSS (VmHWM) for 10,000 rows and for all of them: memory must not grow with
  the input.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import ChildRun, Emulator, Figure, log, run_child, write_jsonl

NAME = "batch"
DEPLOYMENT = "gpt-4o-mini"
ROWS, QUICK_ROWS = 100_000, 20_000
SMALL_ROWS = 10_000  # the run the large one's peak RSS is held against
POLL_INTERVAL_S = 0.05
MAX_OURS_SHARE = 0.50  # "dominated by the emulator's processing": it takes most of the wall time
TARGET_MB = 400.0
TARGET_GROWTH = 1.20
TIMEOUT_S = 300.0

# The batch engine's steps a run is timed by: (owner, method, label).
STEPS = [
    ("pipeline.batch.engine:BatchJob", "_write_inputs", "write"),
    ("pipeline.batch.api:BatchAPI", "upload", "upload"),
    ("pipeline.batch.api:BatchAPI", "create", "create"),
    ("pipeline.batch.engine:BatchJob", "_poll", "wait"),
    ("pipeline.batch.api:BatchAPI", "download", "download"),
    ("pipeline.batch.engine:BatchJob", "_collect", "collect"),
    ("pipeline.batch.engine:BatchJob", "flush", "flush"),
]


def question_row(i: int) -> dict[str, Any]:
    return {"id": f"r{i:07d}", "text": f"Question {i}: how do I sort a list of tuples by their second item in "
                                      "Python, stably?"}


def _spec(folder: Path, url: str, rows: Path) -> Path:
    spec = folder / "job.toml"
    spec.write_text(f'name = "bench-batch"\nendpoint = "chat"\n[input]\npath = "{rows}"\nid = "id"\n'
                    f'prompt = "text"\n[output]\npath = "{folder / "out"}"\n'
                    f'[service]\nprovider = "emulator"\nbase_url = "{url}"\ndeployment = "{DEPLOYMENT}"\n'
                    f'mode = "batch"\npoll_interval_s = {POLL_INTERVAL_S}\n[params]\nmax_tokens = 40\n')
    return spec


# ---------------------------------------------------------------- the child

# `python -c CHILD SPEC REPORT`: imports only what `pipeline run` does (not the bench package, whose
# other benchmarks pull in openai, numpy and psutil), so the peak RSS is the pipeline's own.
CHILD = """
import functools, importlib, json, sys, time
from collections import defaultdict
from pathlib import Path
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

spent = defaultdict(float)

def timed(owner, name, label):
    original = getattr(owner, name)
    if original.__code__.co_flags & 0x80:  # a coroutine function
        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started
    else:
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started
    setattr(owner, name, wrapper)

for where, name, label in json.loads(sys.argv[3]):
    module, owner = where.split(":")
    timed(getattr(importlib.import_module(module), owner), name, label)
started = time.perf_counter()
result = run_job(load_spec(Path(sys.argv[1])), RunOptions())
spent["run_job"] = time.perf_counter() - started
Path(sys.argv[2]).write_text(json.dumps({"exit_code": result.exit_code, "spent": spent,
                                         "succeeded": result.summary.get("rows_succeeded"),
                                         "failed": result.summary.get("rows_failed")}))
sys.exit(result.exit_code)
"""


# ---------------------------------------------------------------- the parent


def _run(url: str, work: Path, count: int) -> tuple[ChildRun, dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        spec = _spec(folder, url, write_jsonl(folder / "in.jsonl", count, question_row))
        report = folder / "report.json"
        run = run_child([sys.executable, "-c", CHILD, str(spec), str(report), json.dumps(STEPS)],
                        timeout_s=TIMEOUT_S)
        seen = json.loads(report.read_text()) if report.exists() else {"spent": {}}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    spent = seen["spent"]
    log(f"  batch {count} rows: exit {run.exit_code}, wall {run.wall_s:.1f} s, cpu {run.cpu_s:.1f} s, peak RSS "
        f"{run.peak_rss_mb:.0f} MB; " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
    return run, seen


def run(quick: bool, work: Path) -> list[Figure]:
    large_n = QUICK_ROWS if quick else ROWS
    small_n = SMALL_ROWS
    with Emulator() as emulator:
        emulator._admin("/_emulator/batches", {"processing_delay_s": 0})
        small, _ = _run(emulator.url, work, small_n)
        large, seen = _run(emulator.url, work, large_n)
    spent: dict[str, float] = defaultdict(float, seen["spent"])
    wait = spent["wait"]
    ours = large.wall_s - wait
    share = ours / large.wall_s
    ok = large.exit_code == 0 and seen.get("succeeded") == large_n
    parts = {
        "start-up (interpreter, imports)": large.wall_s - spent["run_job"],
        "write input files": spent["write"],
        "upload": spent["upload"],
        "download": spent["download"],
        "parse output lines": spent["collect"] - spent["download"] - spent["flush"],
        "write Parquet parts": spent["flush"],
    }
    parts["the rest of run_job"] = spent["run_job"] - wait - sum(list(parts.values())[1:]) - spent["create"]
    breakdown = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in parts.items())
    breakdown += f"; {ours / large_n * 1e6:.0f} us a row"
    growth = large.peak_rss_mb / small.peak_rss_mb if small.peak_rss_mb else 0.0
    ok_small = small.exit_code == 0 and small.peak_rss_mb < TARGET_MB
    ok_large = large.exit_code == 0 and large.peak_rss_mb < TARGET_MB
    return [
        Figure(NAME, f"{large_n:,} rows: wall time", large.wall_s, "s", wait, "emulator's batch processing",
               large.wall_s / wait if wait else None, "info", None,
               f"exit {large.exit_code}, {seen.get('succeeded')} rows succeeded, {seen.get('failed')} failed; "
               f"{large_n / large.wall_s:,.0f} rows/s; child cpu {large.cpu_s:.1f} s"),
        Figure(NAME, f"{large_n:,} rows: our handling, share of wall time", ours, "s", large.wall_s, "wall time",
               share, f"< {MAX_OURS_SHARE:.2f}", ok and share < MAX_OURS_SHARE, breakdown),
        Figure(NAME, f"peak RSS, {small_n:,} rows", small.peak_rss_mb, "MB", None, "", None, f"< {TARGET_MB:g} MB",
               ok_small, f"{small.wall_s:.1f} s wall"),
        Figure(NAME, f"peak RSS, {large_n:,} rows", large.peak_rss_mb, "MB", small.peak_rss_mb,
               f"{small_n:,}-row run", growth, f"< {TARGET_MB:g} MB and <= {TARGET_GROWTH:.2f}x",
               ok_large and growth <= TARGET_GROWTH, f"{large.wall_s:.1f} s wall"),
    ]
