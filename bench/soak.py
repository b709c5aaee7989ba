"""Soak: `python -m bench.soak [--minutes 20] [--rows 300000]` (also `make soak`; not part of `make test`).

One long embeddings run against a faulty emulator in its own process (5xx, dropped connections,
hangs past the timeout, cut bodies, a few spurious 429s, and a quota matching the spec), paced so
the input takes about `--minutes`. While it runs, the client's RSS, open file descriptors and
threads are sampled with psutil and its own status lines are echoed. At the end every input id
must be in results or failures exactly once (none lost, none repeated), and memory and descriptors
must not have grown with the rows done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import psutil
import pyarrow.parquet as pq

from bench.harness import ROOT, Emulator, log, passage_row, write_jsonl, write_spec

BATCH = 16
CONCURRENCY = 8
DIMENSIONS = 64  # small vectors: the soak is about the client's lifetime, not its disk
FAULTS = {"error_rate": 0.02, "drop_rate": 0.01, "hang_rate": 0.002, "hang_s": 5.0, "truncate_rate": 0.005,
          "burst429_rate": 0.001, "latency_ms": 20, "seed": 11}
RSS_GROWTH_LIMIT = 1.5  # end / warm RSS
FD_GROWTH_LIMIT = 16  # descriptors more at the end than when warm


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    threads: int


@dataclass
class Verdict:
    rows: int
    results: int
    failures: int
    repeated: int
    lost: int
    exit_code: int
    wall_s: float

    @property
    def exactly_once(self) -> bool:
        return self.repeated == 0 and self.lost == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="target duration (default 20)")
    parser.add_argument("--rows", type=int, default=300_000, help="input rows (default 300000)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--keep", type=Path, help="keep the work folder here instead of a temporary one")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = soak(work, args.rows, args.minutes, args.sample_every)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["passed"] else 1


def soak(work: Path, rows: int, minutes: float, sample_every: float) -> dict[str, Any]:
    rpm = math.ceil(rows / BATCH / minutes * 1.05)  # a little over the target: retries take their share
    log(f"soak: {rows} rows in ~{minutes:g} min ({rpm} requests/min of {BATCH} rows), faults {FAULTS}")
    source = write_jsonl(work / "in.jsonl", rows, passage_row)
    with Emulator(rpm=rpm, **FAULTS) as emulator:
        spec = write_spec(work, emulator.url, "embeddings", source, deployment="text-embedding-3-small",
                          params={"dimensions": DIMENSIONS},
                          limits={"batch_size": BATCH, "concurrency": CONCURRENCY, "requests_per_minute": rpm,
                                  "max_attempts": 12, "timeout_s": 2, "max_retry_wait_s": 5},
                          output={"flush_rows": 5000, "flush_seconds": 10})
        started = time.monotonic()
        samples, exit_code = run_sampled(spec, work / "run.log", sample_every, deadline_s=minutes * 120 + 120)
        wall = time.monotonic() - started
        service = emulator.stats()
    verdict = check(work / "out", rows, exit_code, wall)
    return figures_of(verdict, samples, service)


def run_sampled(spec: Path, log_path: Path, every: float, deadline_s: float) -> tuple[list[Sample], int]:
    """Run the job as a child; sample it every `every` s and echo its status lines as they come."""
    command = [sys.executable, "-m", "pipeline", "run", str(spec), "--progress-every", str(every)]
    with log_path.open("w") as log_file:
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        echo = threading.Thread(target=_echo, args=(child.stderr, log_file), daemon=True)
        echo.start()
        samples = _sample_until_exit(child, every, deadline_s)
        echo.join(timeout=10)
    return samples, child.returncode


def _echo(stream: TextIO | None, copy: TextIO) -> None:
    for line in stream or ():
        copy.write(line)
        log(f"  | {line.rstrip()}")


def _sample_until_exit(child: subprocess.Popen[str], every: float, deadline_s: float) -> list[Sample]:
    process = psutil.Process(child.pid)
    started = time.monotonic()
    samples: list[Sample] = []
    while child.poll() is None:
        if time.monotonic() - started > deadline_s:
            log(f"soak: still running after {deadline_s:.0f} s; killed")
            child.kill()
            break
        try:
            samples.append(Sample(round(time.monotonic() - started, 1), process.memory_info().rss / 2**20,
                                  process.num_fds(), process.num_threads()))
        except psutil.Error:
            break
        log(f"  sample t={samples[-1].t:.0f}s rss={samples[-1].rss_mb:.0f} MB fds={samples[-1].fds} "
            f"threads={samples[-1].threads}")
        _wait(child, every)
    child.wait()
    return samples


def _wait(child: subprocess.Popen[str], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=seconds)


def _ids(folder: Path) -> Iterator[str]:
    for part in sorted(folder.glob("part-*.parquet")):
        yield from pq.read_table(part, columns=["id"]).column("id").to_pylist()


def check(out: Path, rows: int, exit_code: int, wall: float) -> Verdict:
    """Every input id in results or failures exactly once."""
    results, failures = Counter(_ids(out / "results")), Counter(_ids(out / "failures"))
    seen = results + failures
    expected = {passage_row(i)["id"] for i in range(rows)}
    repeated = sum(1 for count in seen.values() if count > 1) + len(set(results) & set(failures))
    return Verdict(rows, len(results), len(failures), repeated, len(expected - set(seen)), exit_code, wall)


def figures_of(verdict: Verdict, samples: list[Sample], service: dict[str, Any]) -> dict[str, Any]:
    warm = next((s for s in samples if s.t >= 30), samples[0] if samples else None)
    end = samples[-1] if samples else None
    rss_ok = bool(warm and end and end.rss_mb <= warm.rss_mb * RSS_GROWTH_LIMIT)
    fds_ok = bool(warm and end and end.fds <= warm.fds + FD_GROWTH_LIMIT)
    passed = verdict.exactly_once and verdict.exit_code in (0, 1) and rss_ok and fds_ok
    return {
        **asdict(verdict), "exactly_once": verdict.exactly_once,
        "rows_per_s": round(verdict.results / verdict.wall_s, 1) if verdict.wall_s else None,
        "rss_mb": _span(samples, "rss_mb", warm), "fds": _span(samples, "fds", warm),
        "threads": _span(samples, "threads", warm),
        "service": {"requests": service.get("requests"), "by_status": service.get("by_status"),
                    "faults": service.get("faults"), "quota_429s": service.get("throttled")},
        "samples": len(samples), "passed": passed,
    }


def _span(samples: list[Sample], name: str, warm: Sample | None) -> dict[str, float | None]:
    values = [getattr(s, name) for s in samples]
    if not values:
        return {"start": None, "warm": None, "end": None, "max": None}
    return {"start": round(values[0], 1), "warm": round(getattr(warm, name), 1) if warm else None,
            "end": round(values[-1], 1), "max": round(max(values), 1)}


if __name__ == "__main__":
    sys.exit(main())
