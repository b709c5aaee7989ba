"""What a `kill -9` costs: rows answered and counted but not yet committed, redone by the next run.

The run is killed (PIPELINE_CRASH_AT=runner.added:N) right after its N-th answered request is
buffered, at several N spread over the run; at that moment it has counted N x batch_size rows as
answered, and the closed parts on disk hold what was committed. The gap is the redo, held against one
flush window (flush_rows) plus the requests in flight (concurrency x batch_size). 1536-dim vectors
make part writes slow enough to matter, as they do in the field.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from bench.harness import Emulator, Figure, log, passage_row, write_jsonl, write_spec

NAME = "redo"
DEPLOYMENT = "text-embedding-3-small"
DIMENSIONS = 1536
CONCURRENCY = 8
BATCH = 16
CASES = ((20, 4_000), (1000, 40_000))  # (flush_rows, rows in the input)


def _committed(out: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (out / "results").glob("part-*.parquet"))


def _crash_at(url: str, work: Path, flush_rows: int, rows: int, visit: int) -> int:
    """Kill a run at its visit-th buffered answer; the rows it counted but had not committed."""
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        source = write_jsonl(folder / "in.jsonl", rows, passage_row)
        spec = write_spec(folder, url, "embeddings", source, deployment=DEPLOYMENT,
                          params={"dimensions": DIMENSIONS},
                          limits={"concurrency": CONCURRENCY, "batch_size": BATCH},
                          output={"flush_rows": flush_rows, "flush_seconds": 10})
        proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(spec), "-q"], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PIPELINE_CRASH_AT": f"runner.added:{visit}"})
        if proc.returncode != -9:
            raise RuntimeError(f"the run was not killed (exit {proc.returncode}): {proc.stderr[-500:]}")
        return visit * BATCH - _committed(folder / "out")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(quick: bool, work: Path) -> list[Figure]:
    figures = []
    with Emulator() as emulator:
        for flush_rows, rows in CASES:
            requests = rows // BATCH
            visits = [requests * k // 9 for k in range(1, 9 if not quick else 4)]
            redos = [_crash_at(emulator.url, work, flush_rows, rows, v) for v in visits]
            bound = flush_rows + CONCURRENCY * BATCH
            log(f"  redo at flush_rows {flush_rows}: {redos} (bound {bound})")
            figures.append(Figure(
                NAME, f"max redo after kill -9, flush_rows {flush_rows}", max(redos), "rows", flush_rows,
                "flush_rows", round(max(redos) / flush_rows, 2), f"<= flush_rows + in flight ({bound})",
                max(redos) <= bound, f"{len(visits)} kill points; mean {sum(redos) / len(redos):.0f} rows; "
                f"{DIMENSIONS} dims, {CONCURRENCY} workers x {BATCH}-row batches"))
    return figures
