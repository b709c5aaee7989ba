"""A LiteLLM-style gateway in front: an rpm limit counted per clock-aligned window, refused with the
gateway's own 429 (`llm_provider-retry-after`: whole seconds to the window's end) or, with LiteLLM's
defaults, held at the gateway until the window resets.

A fixed window lets its whole quota through at once and nothing more until it ends, so the best any
client can do is the limit per window. Throughput is taken over the windows the run covers whole
(the emulator's admission times put into its clock-aligned windows; the first, partial one and the
tail are left out), against the limit. Quick runs shorten the "minute" to 6 s with matching limits
(and the job's timeout to the window, as a 60 s timeout meets a 60 s window); the full run adds one
case with a real 60 s minute.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients
from bench.harness import Emulator, Figure, chat_row, log, measure, write_jsonl, write_spec

NAME = "gateway"
DEPLOYMENT = "gpt-4o-mini"
CONCURRENCY = 32
MIN_RATIO = 0.9


@dataclass(frozen=True)
class Case:
    name: str
    over_limit: str  # "429" or "hold"
    spec_share: float | None  # the spec's requests_per_minute as a share of the gateway's limit; None: unset
    window_s: float = 6.0
    per_window: int = 60  # the limit: requests per window
    windows: int = 5  # rows for this many windows
    full_only: bool = False
    latency_s: float = 0.05  # the answer's own time; a held request's comes on top of its hold

    @property
    def rpm(self) -> int:
        return round(self.per_window * 60 / self.window_s)


CASES = [
    Case("a. 429s, spec matches the limit", "429", 1.0),
    Case("b. 429s, no limit in the spec", "429", None),
    Case("c. 429s, spec claims 2x the limit", "429", 2.0),
    # Held: with more workers than a window admits, those left over at a window's start wait a whole
    # window, and an answer takes a while on top (a chat answer: a second or two of a 60 s minute, a fifth
    # of a 6 s one): a request held so long outlives the timeout.
    Case("d. held over the limit, no limit in the spec", "hold", None, per_window=20, latency_s=0.2),
    Case("e. held over the limit, spec claims 2x", "hold", 2.0, per_window=20, latency_s=0.2),
    Case("f. held over the limit, real 60 s minute, no limit in the spec", "hold", None, window_s=60.0,
         per_window=20, windows=3, full_only=True, latency_s=2.0),
]


def _run_case(emulator: Emulator, case: Case, work: Path) -> dict[str, Any]:
    emulator.configure(rpm=case.rpm, tpm=None, window_s=case.window_s, window_kind="fixed", gateway="litellm",
                       over_limit=case.over_limit, latency_ms=case.latency_s * 1000)
    emulator.reset()
    count = case.per_window * case.windows
    folder = Path(tempfile.mkdtemp(dir=work))
    spec_rpm = round(case.rpm * case.spec_share) if case.spec_share else None
    try:
        rows = write_jsonl(folder / "in.jsonl", count, chat_row)
        spec = write_spec(folder, emulator.url, "chat", rows, deployment=DEPLOYMENT, params={"max_tokens": 10},
                          limits={"concurrency": CONCURRENCY, "requests_per_minute": spec_rpm,
                                  "timeout_s": min(60.0, case.window_s), "max_retry_wait_s": 60})
        offset = time.time() - time.monotonic()  # the emulator's windows are on the monotonic clock
        with measure() as spent:
            result = clients.run_ours(spec)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stats = emulator.stats()
    summary = result.summary
    log(f"  gateway {case.name}: {summary['rows_succeeded']}/{count} rows in {spent.wall_s:.1f} s, "
        f"{stats['requests']} requests, {stats['by_status'].get('429', 0)} x 429, retries {summary['retries']}")
    return {"rows": count, "done": summary["rows_succeeded"], "failed": summary["rows_failed"],
            "wall_s": spent.wall_s, "requests": stats["requests"], "throttled": stats["by_status"].get("429", 0),
            "timeouts": summary["retries"].get("timeout", 0),
            "windows": _admitted_per_window([t - offset for t in stats["admitted_times"]], case.window_s)}


def _admitted_per_window(times: list[float], window_s: float) -> list[int]:
    """Admissions in each clock-aligned window the run covers whole: neither the first nor the last."""
    counts = Counter(math.floor(t / window_s) for t in times)
    if len(counts) < 3:
        return []
    first, last = min(counts), max(counts)
    return [counts.get(k, 0) for k in range(first + 1, last)]


def _figures(case: Case, seen: dict[str, Any]) -> list[Figure]:
    windows = seen["windows"]
    share = sum(windows) / (len(windows) * case.per_window) if windows else 0.0
    whole = seen["done"] / seen["wall_s"]
    limit = case.per_window / case.window_s
    setup = (f"{seen['done']}/{seen['rows']} rows in {seen['wall_s']:.1f} s; {case.per_window} requests per "
             f"{case.window_s:g} s window; spec rpm {'unset' if case.spec_share is None else f'{case.spec_share:g}x'};"
             f" per whole window {windows}")
    return [
        Figure(NAME, f"{case.name}: throughput over whole windows", sum(windows) / max(1, len(windows)),
               "req/window", case.per_window, "limit", share, f">= {MIN_RATIO:.2f}", share >= MIN_RATIO, setup),
        Figure(NAME, f"{case.name}: throughput, whole run", whole, "req/s", limit, "limit", whole / limit, "info",
               None),
        Figure(NAME, f"{case.name}: rows failed, attempts timed out", seen["failed"], "rows", None, "", None,
               "0 failed, 0 timeouts", seen["failed"] == 0 and seen["timeouts"] == 0,
               f"{seen['timeouts']} timeouts, {seen['throttled']} x 429 of {seen['requests']} requests"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    with Emulator() as emulator:
        for case in CASES:
            if case.full_only and quick:
                continue
            figures += _figures(case, _run_case(emulator, case, work))
    return figures
