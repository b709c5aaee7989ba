"""Embeddings end to end: vectors per second at 1536 dimensions into Parquet.

The emulator (another process, no quota, no latency) bounds what any client can reach on this
machine, so the reference is what the openai SDK (base64, decoded with numpy, kept in a list,
no Parquet) and a bare aiohttp loop get from the same emulator in the same run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench import clients
from bench.harness import Emulator, Figure, iter_chunks, log, measure, passage_row, write_jsonl, write_spec

NAME = "embeddings"
DEPLOYMENT = "text-embedding-3-small"
DIMENSIONS = 1536
BATCH = 256
CONCURRENCY = 8


def run(quick: bool, work: Path) -> list[Figure]:
    count = 10_000 if quick else 50_000
    reference_count = count // 2  # a rate: half the rows measure it as well
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        rows = write_jsonl(folder / "in.jsonl", count, passage_row)
        texts = [passage_row(i)["text"] for i in range(reference_count)]
        batches = list(iter_chunks(texts, BATCH))
        with Emulator() as emulator:
            url = emulator.url
            spec = write_spec(folder, url, "embeddings", rows, deployment=DEPLOYMENT,
                              params={"dimensions": DIMENSIONS},
                              limits={"concurrency": CONCURRENCY, "batch_size": BATCH})
            with measure() as ours:
                result = clients.run_ours(spec)
            done = int(result.summary["rows_succeeded"])
            log(f"  embeddings ours: {done} vectors, wall {ours.wall_s:.2f} s, cpu {ours.cpu_s:.2f} s")
            with measure() as sdk:
                sdk_done = len(clients.openai_embeddings(url, DEPLOYMENT, batches, CONCURRENCY, DIMENSIONS))
            log(f"  embeddings openai: {sdk_done} vectors, wall {sdk.wall_s:.2f} s, cpu {sdk.cpu_s:.2f} s")
            with measure() as bare:
                bare_done = len(clients.bare_embeddings(url, DEPLOYMENT, batches, CONCURRENCY, DIMENSIONS))
            log(f"  embeddings bare: {bare_done} vectors, wall {bare.wall_s:.2f} s, cpu {bare.cpu_s:.2f} s")
        parquet_mb = sum(p.stat().st_size for p in (folder / "out" / "results").glob("*.parquet")) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rate, sdk_rate, bare_rate = done / ours.wall_s, sdk_done / sdk.wall_s, bare_done / bare.wall_s
    setup = f"{count} rows, batch {BATCH}, concurrency {CONCURRENCY}, {parquet_mb:.0f} MB of Parquet"
    return [
        Figure(NAME, f"ours: vectors/s into Parquet ({DIMENSIONS} dims)", rate, "vectors/s", sdk_rate,
               "openai SDK (base64, no Parquet)", rate / sdk_rate, "info", None, setup),
        Figure(NAME, "ours vs bare aiohttp (emulator ceiling)", rate, "vectors/s", bare_rate,
               "bare aiohttp (base64, no Parquet)", rate / bare_rate, "info", None,
               f"client CPU per 1k vectors: ours {ours.cpu_s / done * 1000:.2f} s, openai "
               f"{sdk.cpu_s / sdk_done * 1000:.2f} s, bare {bare.cpu_s / bare_done * 1000:.2f} s"),
    ]
