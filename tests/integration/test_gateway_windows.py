"""A LiteLLM-style gateway's rpm limit, counted per clock-aligned window (3 s "minutes" here): its own
429 says when the window ends, or (LiteLLM's default) it holds an over-limit request until then.
Throughput against such windows is measured in bench/gateway.py; here, what the client wastes."""

from __future__ import annotations

import math
import time
from pathlib import Path

from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import write_job, write_rows

WINDOW_S = 3.0


def questions(n: int) -> list[dict[str, str]]:
    return [{"id": f"q{i}", "text": f"question {i}"} for i in range(n)]


def whole_windows(admitted_times: list[float], offset: float) -> list[int]:
    """Admissions per clock-aligned window the run covered whole (neither its first nor its last)."""
    windows = [math.floor((t - offset) / WINDOW_S) for t in admitted_times]
    return [windows.count(k) for k in range(min(windows) + 1, max(windows))]


def run_against_gateway(tmp_path: Path, emulator, over_limit: str, per_window: int, windows: int,
                        latency_ms: float = 50, **limits: object) -> tuple[dict, list[int]]:
    emulator.configure(rpm=round(per_window * 60 / WINDOW_S), window_s=WINDOW_S, window_kind="fixed",
                       gateway="litellm", over_limit=over_limit, latency_ms=latency_ms)
    rows = questions(per_window * windows)
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 10},
                     limits={"max_attempts": 6, **limits})  # no rpm: the spec does not know the gateway's limit
    offset = time.time() - time.monotonic()  # the emulator counts its windows on the monotonic clock
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    assert result.summary["rows_succeeded"] == len(rows)
    return result.summary, whole_windows(emulator.stats()["admitted_times"], offset)


def test_the_gateways_retry_after_is_held_to_and_every_window_is_used(tmp_path: Path, emulator) -> None:
    summary, per_window = run_against_gateway(tmp_path, emulator, "429", per_window=10, windows=3, concurrency=16,
                                              max_retry_wait_s=5)
    assert per_window and min(per_window) >= 5, per_window  # no whole window left idle
    # Held until the window's end that llm_provider-retry-after names: a few 429s per window (those in
    # flight when it filled). Waiting 1 s instead earned 33 for these 30 rows.
    assert summary["throttled_429"] <= 20, summary["throttled_429"]


def test_a_gateway_holding_over_limit_requests_costs_no_rows(tmp_path: Path, emulator) -> None:
    # More workers than a window admits, and a timeout as long as the window: those left over at a
    # window's start wait out a second one and time out (and are admitted anyway, using the next window
    # for nothing). Answers held that long cut the concurrency (client/concurrency.py), so after the first
    # window few are left over; a timed-out attempt is retried, and no row fails.
    summary, per_window = run_against_gateway(tmp_path, emulator, "hold", per_window=6, windows=3, concurrency=16,
                                              latency_ms=100, timeout_s=WINDOW_S)
    assert summary["rows_failed"] == 0
    assert per_window and min(per_window) >= 3, per_window
    # Sending on at full concurrency, attempts timed out behind the gateway's hold until rows failed; now
    # the late answers lower the concurrency and a timed-out attempt's retry waits for the gateway.
    assert summary["retries"].get("timeout", 0) < 10, summary["retries"]
