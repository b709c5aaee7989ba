"""Pacing by the service's own token count: servers that count 0.8x, 1.0x and 1.25x our estimate.

Azure charges each request against TPM with its own estimate at arrival; ours errs high on
purpose. The emulator's `token_count_factor` makes it charge that many times the estimate both
sides share, and its x-ratelimit-*-tokens headers count what it charged; the job spec states the
quota as the service counts it. Throughput is in the service's tokens (what the emulator charged)
against its TPM, over the middle 80% of admitted requests and over the whole run, as in quota.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Emulator, Figure, steady_rate
from bench.quota import CONCURRENCY, charge, send_chat_rows

NAME = "ratio"
LATENCY_MS = 50.0
MAX_TOKENS = 100
MIN_RATIO = 0.97
MAX_429_SHARE = 0.01


@dataclass(frozen=True)
class Case:
    name: str
    factor: float  # the service's count per token of our estimate
    tpm: int  # its quota, in its own count (the spec says the same)
    window_s: float = 1.0
    seconds: float = 30.0  # how long the quota should need for the rows
    quick_seconds: float = 10.0


CASES = [
    Case("a. counts 0.8x our estimate", 0.8, 600_000),
    Case("b. counts as we do", 1.0, 600_000),
    Case("c. counts 1.25x our estimate", 1.25, 600_000),
]


def _rows_for(case: Case, seconds: float) -> int:
    return max(10, round(case.tpm / 60 * seconds / (case.factor * charge(MAX_TOKENS, 1000))))


def _run_case(emulator: Emulator, case: Case, seconds: float, work: Path) -> dict[str, Any]:
    emulator.configure(rpm=None, tpm=case.tpm, window_s=case.window_s, latency_ms=LATENCY_MS,
                       token_count_factor=case.factor)
    emulator.reset()
    count = _rows_for(case, seconds)
    return send_chat_rows(emulator, work, f"ratio {case.name}", count, MAX_TOKENS,
                          {"concurrency": CONCURRENCY, "tokens_per_minute": case.tpm})


def _figures(case: Case, seen: dict[str, Any]) -> list[Figure]:
    quota = case.tpm / 60
    per_request = seen["tokens_charged"] / max(1, len(seen["admitted_times"]))
    steady = (steady_rate(seen["admitted_times"]) or 0.0) * per_request
    whole = seen["tokens_charged"] / seen["wall_s"]
    share = seen["throttled"] / max(1, seen["requests"])
    setup = (f"{seen['done']}/{seen['rows']} rows in {seen['wall_s']:.1f} s; TPM {case.tpm} over {case.window_s:g} s "
             f"windows, the service counting {case.factor:g}x our estimate")
    return [
        Figure(NAME, f"{case.name}: throughput, steady (middle 80%)", steady, "tokens/s", quota, "quota rate",
               steady / quota, f">= {MIN_RATIO:.2f}", steady / quota >= MIN_RATIO, setup),
        Figure(NAME, f"{case.name}: throughput, whole run", whole, "tokens/s", quota, "quota rate", whole / quota,
               "info", None),
        Figure(NAME, f"{case.name}: share of 429s", share * 100, "%", None, "", None, f"< {MAX_429_SHARE:.0%}",
               share < MAX_429_SHARE, f"{seen['throttled']} of {seen['requests']} requests"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    with Emulator() as emulator:
        for case in CASES:
            seen = _run_case(emulator, case, case.quick_seconds if quick else case.seconds, work)
            figures += _figures(case, seen)
    return figures
