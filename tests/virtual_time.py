"""An event loop whose clock moves only when every task waits: pacing tests run minutes of traffic in
milliseconds, deterministically (asyncio.sleep, call_at and aiolimiter all read loop.time())."""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _TimeTravel(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A selector that, instead of blocking, moves the clock to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        # Always a little: a timer due within the clock's resolution runs at once, and aiolimiter,
        # seeing no time pass, would set it again forever.
        self.now += max(timeout, 1e-6)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """asyncio.sleep, call_at and aiolimiter all read loop.time(): here it only moves when all wait."""

    def __init__(self) -> None:
        self._travel = _TimeTravel()
        super().__init__(self._travel)

    def time(self) -> float:
        return self._travel.now
