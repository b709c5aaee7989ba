"""Run statistics built from the engines' events (pipeline/events.py): what progress lines and the summary show."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.events import Done, Event, Failed, Retried, Skipped, Throttled

RESERVOIR = 10_000


@dataclass
class RunStats:
    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    failed_earlier: int = 0  # of the skipped: rows whose earlier failure stands (not sent again)
    failed_transient: int = 0  # of the failed: the service's moment (errors.is_transient_failure), sent again
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in: prompt-cache hits
    tokens_reasoning: int = 0  # of tokens_out: reasoning
    throttled: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    retries: Counter[str] = field(default_factory=Counter)
    failures_by_code: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    _latencies: list[float] = field(default_factory=list)
    _seen_latencies: int = 0

    def apply(self, event: Event) -> None:
        """The one entry point for events (row done, row failed, retry, throttled...)."""
        match event:
            case Done():
                self._on_done(event)
            case Failed():
                self._on_failed(event)
            case Skipped():
                self._on_skipped(event)
            case Retried():
                self.retries[event.cause] += 1
            case Throttled():
                self.throttled += 1

    def merge(self, other: RunStats) -> None:
        """Add another run's counts (a shard's, on a cluster); latencies pooled, within the reservoir."""
        for name in ("succeeded", "failed", "skipped", "failed_earlier", "failed_transient", "requests", "tokens_in",
                     "tokens_out", "tokens_cached", "tokens_reasoning", "throttled", "images", "audio_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retries.update(other.retries)
        self.failures_by_code.update(other.failures_by_code)
        for latency in other._latencies:
            self._sample_latency(latency)

    def _on_done(self, event: Done) -> None:
        self.succeeded += event.rows
        self.images += event.images
        self.audio_seconds += event.audio_seconds
        self.requests += event.requests
        self.tokens_in += event.tokens_in
        self.tokens_out += event.tokens_out
        self.tokens_cached += event.tokens_cached
        self.tokens_reasoning += event.tokens_reasoning
        self._sample_latency(event.latency_s)

    def _on_failed(self, event: Failed) -> None:
        self.failed += event.rows
        self.failed_transient += event.rows if event.transient else 0
        self.failures_by_code[event.code] += event.rows
        if event.requested:
            self.requests += 1

    def _on_skipped(self, event: Skipped) -> None:
        self.skipped += event.rows
        if event.failed_earlier:
            self.failed_earlier += event.rows

    def _sample_latency(self, latency_s: float) -> None:
        # Reservoir sampling keeps percentiles honest with bounded memory.
        self._seen_latencies += 1
        if len(self._latencies) < RESERVOIR:
            self._latencies.append(latency_s)
        else:
            slot = random.randrange(self._seen_latencies)
            if slot < RESERVOIR:
                self._latencies[slot] = latency_s

    def percentile(self, q: float) -> float | None:
        if not self._latencies:
            return None
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def summary(self) -> dict[str, Any]:
        elapsed = max(self.elapsed, 1e-9)
        latency = {f"p{int(q * 100)}_ms": None if (v := self.percentile(q)) is None else round(v * 1000, 1)
                   for q in (0.5, 0.95, 0.99)}
        return {
            "rows_total": self.total,
            "rows_succeeded": self.succeeded,
            "rows_failed": self.failed,
            "rows_skipped": self.skipped,
            "rows_failed_earlier": self.failed_earlier,
            "rows_failed_transient": self.failed_transient,
            "requests": self.requests,
            "wall_time_s": round(elapsed, 3),
            "rows_per_s": round(self.succeeded / elapsed, 2),
            "latency": latency,
            "retries": dict(self.retries),
            "throttled_429": self.throttled,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_cached": self.tokens_cached,
            "tokens_reasoning": self.tokens_reasoning,
            "images": self.images,
            "audio_seconds": round(self.audio_seconds, 2),
            "failures_by_code": dict(self.failures_by_code),
        }
