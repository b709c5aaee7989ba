"""Client overhead: requests per CPU-second of the client process, ours against the openai SDK.

The emulator (another process) has no quota and no latency. Ours runs the whole pipeline
(pacer active at RPM 10^7, retries, Parquet parts); the openai SDK and a bare aiohttp loop
send the same chat requests at the same concurrency and keep the answers in a list. Each
client gets a short warm-up, then the rounds alternate between clients and the best round of
each counts (noise on a shared machine only ever adds CPU).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import clients
from bench.harness import Emulator, Figure, Measured, chat_row, log, measure, write_jsonl, write_spec

NAME = "overhead"
DEPLOYMENT = "gpt-4o-mini"
CONCURRENCY = 32
MAX_TOKENS = 16
TARGET_RATIO = 4.0


def _ours(url: str, work: Path, count: int) -> Callable[[], int]:
    def run() -> int:
        folder = Path(tempfile.mkdtemp(dir=work))
        rows = write_jsonl(folder / "in.jsonl", count, chat_row)
        spec = write_spec(folder, url, "chat", rows, deployment=DEPLOYMENT, params={"max_tokens": MAX_TOKENS},
                          limits={"concurrency": CONCURRENCY, "requests_per_minute": 10_000_000})
        result = clients.run_ours(spec)
        return int(result.summary["rows_succeeded"])

    return run


def _baseline(call: Callable[..., list[Any]], url: str, count: int) -> Callable[[], int]:
    prompts = [chat_row(i)["text"] for i in range(count)]
    return lambda: len(call(url, DEPLOYMENT, prompts, CONCURRENCY, MAX_TOKENS))


def _best(runs: list[tuple[Measured, int]]) -> tuple[Measured, int]:
    return min(runs, key=lambda run: run[0].cpu_s / max(run[1], 1))


def run(quick: bool, work: Path) -> list[Figure]:
    count = 1000 if quick else 3000
    rounds = 2 if quick else 3
    best: dict[str, tuple[Measured, int]] = {}
    with Emulator() as emulator:
        url = emulator.url
        runners: dict[str, Callable[[int], Callable[[], int]]] = {
            "ours": lambda n: _ours(url, work, n),
            "openai": lambda n: _baseline(clients.openai_chat, url, n),
            "bare": lambda n: _baseline(clients.bare_chat, url, n),
        }
        for make in runners.values():  # warm-up: imports, first connections, lazy setup
            make(100)()
        taken: dict[str, list[tuple[Measured, int]]] = {name: [] for name in runners}
        for round_number in range(rounds):
            for name, make in runners.items():
                job = make(count)
                with measure() as spent:
                    done = job()
                taken[name].append((spent, done))
                log(f"  overhead round {round_number + 1} {name}: {done} requests, wall {spent.wall_s:.2f} s, "
                    f"cpu {spent.cpu_s:.2f} s")
        best = {name: _best(runs) for name, runs in taken.items()}
    return _figures(best, count)


def _figures(best: dict[str, tuple[Measured, int]], count: int) -> list[Figure]:
    def per_cpu(name: str) -> float:
        spent, done = best[name]
        return done / spent.cpu_s

    def per_wall(name: str) -> float:
        spent, done = best[name]
        return done / spent.wall_s

    ours, sdk, bare = per_cpu("ours"), per_cpu("openai"), per_cpu("bare")
    setup = f"{count} chat requests, concurrency {CONCURRENCY}, emulator without quota or latency"
    return [
        Figure(NAME, "ours: requests per CPU-second", ours, "req/CPU-s", sdk, "openai SDK", ours / sdk,
               f">= {TARGET_RATIO:g}x openai", ours / sdk >= TARGET_RATIO, setup),
        Figure(NAME, "bare aiohttp: requests per CPU-second", bare, "req/CPU-s", sdk, "openai SDK", bare / sdk,
               "floor (info)", None),
        Figure(NAME, "ours: client CPU per request", 1000 / ours, "ms", 1000 / sdk, "openai SDK",
               ours / sdk, "info", None, "ratio = openai's CPU per request / ours"),
        Figure(NAME, "ours: requests per second (wall)", per_wall("ours"), "req/s", per_wall("openai"),
               "openai SDK", per_wall("ours") / per_wall("openai"), "info", None,
               f"bare aiohttp: {per_wall('bare'):.0f} req/s"),
    ]
