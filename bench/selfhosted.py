"""A self-hosted embeddings server: no quota, finite compute, and the job's default limits.

The emulator (another process) runs compute-bound: one request at a time, `compute_ms_per_input`
per input, and a request whose client timed out is computed all the same, as an inference server
does. Its capacity is therefore exactly 1000 / ms inputs per second, and the reference for the
throughput. The job keeps the spec's defaults (concurrency 16, batch_size 256, timeout_s 60): the
client has to find the server's capacity itself. The server is made fast enough for a run of about
a minute, slow enough that the defaults overrun it: 16 full batches in flight are minutes of work,
far beyond the timeout (issue 13: 1,232 of 2,000 rows failed, 28 batches computed to deliver 3).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients
from bench.harness import Emulator, Figure, log, measure, passage_row, write_jsonl, write_spec

NAME = "selfhosted"
DEPLOYMENT = "bge-large-en"
TIMEOUT_S = 60.0  # the spec's default, written out: the point is the defaults
MIN_RATIO = 0.9


@dataclass(frozen=True)
class Case:
    name: str
    ms_per_input: float
    rows: int
    quick_rows: int | None  # None: left out of --quick

    def full_batch_s(self) -> float:
        return 256 * self.ms_per_input / 1000


CASES = [
    # 8 full batches of 7.7 s each; 16 in flight would be 2 minutes of queue.
    Case("a. 30 ms per input", 30.0, 2000, 1000),
    # A full batch (64 s) takes longer than the timeout: every attempt of it would time out.
    Case("b. 250 ms per input", 250.0, 256, None),
]


def _run_case(case: Case, rows: int, work: Path) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        data = write_jsonl(folder / "in.jsonl", rows, passage_row)
        with Emulator(compute_ms_per_input=case.ms_per_input) as emulator:  # a fresh server: an idle worker
            spec = write_spec(folder, emulator.url, "embeddings", data, deployment=DEPLOYMENT,
                              limits={"timeout_s": TIMEOUT_S})
            with measure() as spent:
                result = clients.run_ours(spec)
            stats = emulator.stats()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    compute = stats.get("compute", {})
    seen = {"rows": rows, "done": int(result.summary["rows_succeeded"]), "failed": int(result.summary["rows_failed"]),
            "exit_code": result.exit_code, "wall_s": spent.wall_s, "computed": compute.get("computed", 0),
            "delivered": compute.get("delivered", 0), "abandoned": compute.get("abandoned", 0),
            "busy_s": compute.get("busy_s", 0.0), "retries": sum(result.summary.get("retries", {}).values())}
    log(f"  selfhosted {case.name}: {seen['done']}/{rows} rows, {seen['failed']} failed, exit {result.exit_code}, "
        f"{spent.wall_s:.1f} s; server computed {seen['computed']} requests, delivered {seen['delivered']}, "
        f"busy {seen['busy_s']:.1f} s")
    return seen


def _figures(case: Case, seen: dict[str, Any]) -> list[Figure]:
    capacity = 1000 / case.ms_per_input  # inputs/s: one worker, nothing else
    throughput = seen["done"] / seen["wall_s"]
    setup = (f"{seen['rows']} rows, defaults (concurrency 16, batch_size 256, timeout_s 60); a full batch "
             f"takes {case.full_batch_s():.1f} s; {seen['wall_s']:.1f} s, exit {seen['exit_code']}, "
             f"{seen['retries']} retries")
    computed, delivered = seen["computed"], seen["delivered"]
    return [
        Figure(NAME, f"{case.name}: throughput", throughput, "inputs/s", capacity, "server capacity",
               throughput / capacity, f">= {MIN_RATIO}", throughput / capacity >= MIN_RATIO, setup),
        Figure(NAME, f"{case.name}: rows failed", seen["failed"], "rows", None, "", None, "0",
               seen["failed"] == 0 and seen["done"] == seen["rows"]),
        Figure(NAME, f"{case.name}: requests delivered / computed", delivered, "requests", computed,
               "computed by the server", delivered / computed if computed else None, "info", None,
               f"{seen['abandoned']} computed for a client that had timed out; server busy "
               f"{seen['busy_s'] / seen['wall_s']:.0%} of the run (issue 13: 3 delivered of 28 computed)"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    for case in CASES:
        rows = case.quick_rows if quick else case.rows
        if rows is None:
            continue
        figures += _figures(case, _run_case(case, rows, work))
    return figures
