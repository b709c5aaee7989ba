"""The run's board (a Ray actor): workers post their events, the driver drains them and posts orders.

Events are what the driver's progress line, the caller's on_event and the cluster-wide budgets are made
of; orders go the other way: stop (Ctrl-C, a failed shard: finish what is in flight, commit, end) and
finish (a budget the driver saw reached across all workers: take no more rows). The board also counts
each shard's attempts, so a retried shard knows it is one (the crash tests arm the first attempt only).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from pipeline.core.exitcodes import ExitCode
from pipeline.events import Event

MAX_EVENTS = 200_000  # the driver drains every fraction of a second; this bounds a stalled driver's board


@dataclass(frozen=True)
class Order:
    serial: int
    kind: str  # "stop" or "finish"
    code: ExitCode
    message: str | None


class RunBoard:
    def __init__(self) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=MAX_EVENTS)
        self._orders: list[Order] = []
        self._attempts: collections.Counter[int] = collections.Counter()

    def started(self, shard: int) -> int:
        """A shard's attempt begins: which one (0 the first)."""
        attempt = self._attempts[shard]
        self._attempts[shard] += 1
        return attempt

    def post(self, events: list[Event], seen: int) -> list[Order]:
        """A worker's events since its last post; the orders after the `seen`-th."""
        self._events.extend(events)
        return self._orders[seen:]

    def drain(self) -> list[Event]:
        events = list(self._events)
        self._events.clear()
        return events

    def order(self, kind: str, code: ExitCode, message: str | None) -> None:
        self._orders.append(Order(len(self._orders) + 1, kind, code, message))
