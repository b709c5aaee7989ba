"""Quota efficiency: how close to an emulated Azure quota the client runs, and how many 429s it earns.

The emulator (another process) enforces the quota over 1 s sliding windows, as Azure does. For
each case the throughput is taken two ways: over the whole run (rows / wall time, start-up and
tail included) and over the middle 80% of the admitted requests (the emulator's
`admitted_times`), which is the steady rate. Both are divided by the quota's rate.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients
from bench.harness import Emulator, Figure, chat_row, log, measure, steady_rate, write_jsonl, write_spec
from pipeline.tokens import estimate_messages_tokens

NAME = "quota"
DEPLOYMENT = "gpt-4o-mini"
CONCURRENCY = 32
LATENCY_MS = 50.0


@dataclass(frozen=True)
class Case:
    name: str
    rpm: int | None  # the emulator's quota
    tpm: int | None
    spec_rpm: int | None  # what the job spec claims
    spec_tpm: int | None
    seconds: float  # how long the quota should need for the rows
    quick_seconds: float
    max_tokens: int = 10
    min_ratio: float = 0.97
    max_429_share: float = 0.01


CASES = [
    Case("a. RPM 1200, spec matches", 1200, None, 1200, None, 30, 10),
    Case("b. RPM 1200, spec claims 2x", 1200, None, 2400, None, 30, 10, min_ratio=0.90, max_429_share=0.05),
    Case("c. TPM 600k, spec matches", None, 600_000, None, 600_000, 30, 10, max_tokens=100),
    Case("f. TPM 600k, spec claims 2x", None, 600_000, None, 1_200_000, 30, 10, max_tokens=100, min_ratio=0.90,
         max_429_share=0.05),
    # ~118-token requests against 1,000 tokens per 1 s window: at most 8 fit any window, so 0.944
    # is the ceiling for any client that earns no 429s; a small quota is lumpy by nature.
    Case("e. TPM 60k (8 requests per window)", None, 60_000, None, 60_000, 30, 10, max_tokens=100, min_ratio=0.9),
    Case("d. RPM 60 (whisper-like)", 60, None, 60, None, 30, 15),
]


def charge(max_tokens: int, i: int) -> int:
    """Tokens the emulator charges for row i's request at arrival (the client estimates the same)."""
    return estimate_messages_tokens([{"role": "user", "content": chat_row(i)["text"]}]) + max_tokens


def _rows_for(case: Case, seconds: float) -> int:
    if case.rpm:
        return max(10, round(case.rpm / 60 * seconds))
    assert case.tpm
    return max(10, round(case.tpm / 60 * seconds / charge(case.max_tokens, 1000)))


def _run_case(emulator: Emulator, case: Case, seconds: float, work: Path) -> dict[str, Any]:
    emulator.configure(rpm=case.rpm, tpm=case.tpm, window_s=1.0, latency_ms=LATENCY_MS)
    emulator.reset()
    count = _rows_for(case, seconds)
    return send_chat_rows(emulator, work, f"quota {case.name}", count, case.max_tokens,
                          {"concurrency": CONCURRENCY, "requests_per_minute": case.spec_rpm,
                           "tokens_per_minute": case.spec_tpm})


def send_chat_rows(emulator: Emulator, work: Path, label: str, count: int, max_tokens: int,
                   limits: dict[str, Any]) -> dict[str, Any]:
    """Run `count` chat rows through our client against the emulator; what it saw (rows, 429s, admissions)."""
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        rows = write_jsonl(folder / "in.jsonl", count, chat_row)
        spec = write_spec(folder, emulator.url, "chat", rows, deployment=DEPLOYMENT,
                          params={"max_tokens": max_tokens}, limits=limits)
        with measure() as spent:
            result = clients.run_ours(spec)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stats = emulator.stats()
    done = int(result.summary["rows_succeeded"])
    throttled = stats["by_status"].get("429", 0)
    log(f"  {label}: {done}/{count} rows in {spent.wall_s:.1f} s, {stats['requests']} requests, {throttled} x 429")
    return {"rows": count, "done": done, "wall_s": spent.wall_s, "requests": stats["requests"],
            "throttled": throttled, "admitted_times": stats["admitted_times"],
            "tokens_charged": stats["tokens_charged"]}


def _figures(case: Case, seen: dict[str, Any]) -> list[Figure]:
    steady = steady_rate(seen["admitted_times"]) or 0.0
    admitted = max(1, len(seen["admitted_times"]))
    if case.rpm:
        quota, unit = case.rpm / 60, "req/s"
        whole = seen["done"] / seen["wall_s"]
    else:
        assert case.tpm
        quota, unit = case.tpm / 60, "tokens/s"
        per_request = seen["tokens_charged"] / admitted
        whole, steady = seen["tokens_charged"] / seen["wall_s"], steady * per_request
    share = seen["throttled"] / max(1, seen["requests"])
    setup = (f"{seen['done']}/{seen['rows']} rows in {seen['wall_s']:.1f} s; "
             f"spec rpm={case.spec_rpm} tpm={case.spec_tpm}")
    return [
        Figure(NAME, f"{case.name}: throughput, steady (middle 80%)", steady, unit, quota, "quota rate",
               steady / quota, f">= {case.min_ratio:.2f}", steady / quota >= case.min_ratio, setup),
        Figure(NAME, f"{case.name}: throughput, whole run", whole, unit, quota, "quota rate", whole / quota,
               "info", None),
        Figure(NAME, f"{case.name}: share of 429s", share * 100, "%", None, "", None,
               f"< {case.max_429_share:.0%}", share < case.max_429_share,
               f"{seen['throttled']} of {seen['requests']} requests"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    with Emulator() as emulator:
        for case in CASES:
            seen = _run_case(emulator, case, case.quick_seconds if quick else case.seconds, work)
            figures += _figures(case, seen)
    return figures
