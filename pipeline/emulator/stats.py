"""What the emulator saw, for tests and benchmarks to assert on (GET /_emulator/stats)."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

# Enough arrival times to check pacing over a long test, bounded for long soaks.
ADMITTED_TIMES_KEPT = 20_000


class Stats:
    """Counters keyed by status, operation, route flavour and deployment."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_op: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self.by_deployment: Counter[str] = Counter()
        self.tokens_by_deployment: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.upload_bytes = 0  # of the files multipart requests carried (audio), those refused as too large too
        self.audio_refused: Counter[str] = Counter()  # uploads refused once decoded: "undecodable", "length"
        self.tokens_charged = 0
        self.throttled = 0
        self.flex_unavailable = 0  # flex requests answered "resource unavailable" (not throttled: no quota)
        self.in_flight = 0
        self.max_in_flight = 0
        self.admitted_times: deque[float] = deque(maxlen=ADMITTED_TIMES_KEPT)

    def started(self, op: str, route: str) -> None:
        self.requests += 1
        self.by_op[op] += 1
        self.by_route[route] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, outcome: str, deployment: str | None) -> None:
        """`outcome` is the status code as text, or "dropped" / "cancelled"."""
        self.in_flight -= 1
        self.by_status[outcome] += 1
        if deployment:
            self.by_deployment[deployment] += 1

    def admitted(self, deployment: str, tokens: int) -> None:
        self.tokens_charged += tokens
        self.tokens_by_deployment[deployment] += tokens
        self.admitted_times.append(time.time())

    def uploaded(self, size: int) -> None:
        self.upload_bytes += size

    def snapshot(self, fault_markers: dict[str, int]) -> dict[str, Any]:
        snapshot: dict[str, Any] = {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "by_op": dict(self.by_op),
            "by_route": dict(self.by_route),
            "by_deployment": dict(self.by_deployment),
            "tokens_charged": self.tokens_charged,
            "upload_bytes": self.upload_bytes,
            "tokens_by_deployment": dict(self.tokens_by_deployment),
            "throttled": self.throttled,
            "faults": dict(self.faults),
            "fault_markers": fault_markers,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "admitted_times": list(self.admitted_times),
        }
        if self.audio_refused:  # only once an upload was refused: other stats keep their shape
            snapshot["audio_refused"] = dict(self.audio_refused)
        if self.flex_unavailable:  # likewise once a flex request found no capacity
            snapshot["flex_unavailable"] = self.flex_unavailable
        return snapshot
