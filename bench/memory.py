"""Peak RSS of `python -m pipeline run` for a small and a large embeddings input.

Memory must not grow with the input: the large run is held against the small one from the
same session. The peak is the child's VmHWM (the kernel's high-water mark of its own address
space), polled until it exits. If the small run predicts the large one would take more than
LARGE_BUDGET_S, the large input is halved and the table says so.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench.harness import ChildRun, Emulator, Figure, log, passage_row, run_child, write_jsonl, write_spec

NAME = "memory"
DEPLOYMENT = "text-embedding-3-small"
DIMENSIONS = 256
CONCURRENCY = 8
LARGE_BUDGET_S = 240.0
TARGET_MB = 400.0
TARGET_GROWTH = 1.20


def _run(url: str, work: Path, count: int) -> ChildRun:
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        rows = write_jsonl(folder / "in.jsonl", count, passage_row)
        spec = write_spec(folder, url, "embeddings", rows, deployment=DEPLOYMENT,
                          params={"dimensions": DIMENSIONS}, limits={"concurrency": CONCURRENCY})
        run = run_child([sys.executable, "-m", "pipeline", "run", str(spec), "-q"], timeout_s=2 * LARGE_BUDGET_S + 60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    log(f"  memory {count} rows: exit {run.exit_code}, wall {run.wall_s:.1f} s, cpu {run.cpu_s:.1f} s, "
        f"peak RSS {run.peak_rss_mb:.0f} MB")
    return run


def run(quick: bool, work: Path) -> list[Figure]:
    small_n, large_n = (20_000, 200_000) if quick else (100_000, 1_000_000)
    note = ""
    with Emulator() as emulator:
        small = _run(emulator.url, work, small_n)
        predicted = small.wall_s * large_n / small_n
        if predicted > LARGE_BUDGET_S:
            note = f"scaled from {large_n} rows: the small run predicted {predicted:.0f} s; "
            large_n //= 2
        large = _run(emulator.url, work, large_n)
    growth = large.peak_rss_mb / small.peak_rss_mb
    ok_small = small.exit_code == 0 and small.peak_rss_mb < TARGET_MB
    ok_large = large.exit_code == 0 and large.peak_rss_mb < TARGET_MB
    return [
        Figure(NAME, f"peak RSS, {small_n:,} rows", small.peak_rss_mb, "MB", None, "", None,
               f"< {TARGET_MB:g} MB", ok_small,
               f"{DIMENSIONS} dims; {small.wall_s:.1f} s wall, {small_n / small.wall_s:,.0f} rows/s"),
        Figure(NAME, f"peak RSS, {large_n:,} rows", large.peak_rss_mb, "MB", small.peak_rss_mb,
               f"{small_n:,}-row run", growth, f"< {TARGET_MB:g} MB and <= {TARGET_GROWTH:.2f}x",
               ok_large and growth <= TARGET_GROWTH,
               f"{note}{large.wall_s:.1f} s wall, {large_n / large.wall_s:,.0f} rows/s"),
    ]
