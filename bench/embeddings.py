"""Embeddings end to end: vectors per second at 1536 dimensions into Parquet.

The emulator (another process, no quota, no latency) bounds what any client can reach on this
machine, so the reference is what the openai SDK (base64, decoded with numpy, kept in a list,
no Parquet) and a bare aiohttp loop get from the same emulator in the same run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import clients
from bench.harness import (
    Emulator,
    Figure,
    Measured,
    iter_chunks,
    log,
    measure,
    passage_row,
    write_jsonl,
    write_spec,
)

NAME = "embeddings"
DEPLOYMENT = "text-embedding-3-small"
DIMENSIONS = 1536
BATCH = 256
CONCURRENCY = 8


def _ours(url: str, folder: Path, rows: Path) -> tuple[int, Measured]:
    run_folder = Path(tempfile.mkdtemp(dir=folder))
    spec = write_spec(run_folder, url, "embeddings", rows, deployment=DEPLOYMENT, params={"dimensions": DIMENSIONS},
                      limits={"concurrency": CONCURRENCY, "batch_size": BATCH})
    try:
        with measure() as spent:
            result = clients.run_ours(spec)
    finally:
        shutil.rmtree(run_folder, ignore_errors=True)
    return int(result.summary["rows_succeeded"]), spent


def _baseline(call: Callable[..., list[Any]], url: str, batches: list[list[str]]) -> tuple[int, Measured]:
    with measure() as spent:
        done = len(call(url, DEPLOYMENT, batches, CONCURRENCY, DIMENSIONS))
    return done, spent


def run(quick: bool, work: Path) -> list[Figure]:
    count = 10_000 if quick else 50_000
    rounds = 1 if quick else 2
    texts = [passage_row(i)["text"] for i in range(count // 2)]  # a rate: half the rows measure it as well
    batches = list(iter_chunks(texts, BATCH))
    folder = Path(tempfile.mkdtemp(dir=work))
    taken: dict[str, list[tuple[int, Measured]]] = {"ours": [], "openai": [], "bare": []}
    try:
        rows = write_jsonl(folder / "in.jsonl", count, passage_row)
        with Emulator() as emulator:
            url = emulator.url
            _baseline(clients.openai_embeddings, url, batches[:2])  # warm-up: lazy imports, connections
            for round_number in range(rounds):
                taken["ours"].append(_ours(url, folder, rows))
                taken["openai"].append(_baseline(clients.openai_embeddings, url, batches))
                taken["bare"].append(_baseline(clients.bare_embeddings, url, batches))
                for name, runs in taken.items():
                    done, spent = runs[-1]
                    log(f"  embeddings round {round_number + 1} {name}: {done} vectors, wall {spent.wall_s:.2f} s, "
                        f"cpu {spent.cpu_s:.2f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    best = {name: max(runs, key=lambda run: run[0] / run[1].wall_s) for name, runs in taken.items()}
    return _figures(best, count, rounds)


def _figures(best: dict[str, tuple[int, Measured]], count: int, rounds: int) -> list[Figure]:
    rate = {name: done / spent.wall_s for name, (done, spent) in best.items()}
    cpu = {name: spent.cpu_s / done * 1e6 for name, (done, spent) in best.items()}
    setup = (f"{count} rows, batch {BATCH}, concurrency {CONCURRENCY}, best of {rounds}; "
             f"references on {count // 2} rows")
    return [
        Figure(NAME, f"ours: vectors/s into Parquet ({DIMENSIONS} dims)", rate["ours"], "vectors/s",
               rate["openai"], "openai SDK, base64, no Parquet", rate["ours"] / rate["openai"], "info", None, setup),
        Figure(NAME, "ours vs bare aiohttp (emulator ceiling)", rate["ours"], "vectors/s", rate["bare"],
               "bare aiohttp, base64, no Parquet", rate["ours"] / rate["bare"], "info", None),
        Figure(NAME, "ours: client CPU per 1k vectors", cpu["ours"], "ms", cpu["openai"], "openai SDK",
               cpu["openai"] / cpu["ours"], "info", None,
               f"ratio = openai's CPU / ours (ours also writes Parquet); bare aiohttp: {cpu['bare']:.0f} ms"),
    ]
