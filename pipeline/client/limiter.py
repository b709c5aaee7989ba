"""Pacing: a requests/min and a tokens/min bucket (aiolimiter), one adaptive rate, one shared hold.

Azure admits a request when the last 1-10 s hold fewer than quota*window/60 requests (and
tokens, counted at arrival). So the buckets hold almost nothing in reserve (one request; a
tenth of a second of tokens) and start full: requests leave evenly spaced, never as a burst.
The configured limits are a ceiling. A 429 cuts the rate for every worker (x0.7) and holds
them all until its retry-after has passed; quiet success raises it again step by step.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

HEADROOM = 0.97  # pacing at exactly the quota earns 429s from timing jitter alone
CUT = 0.7
RAISE_STEP = 0.05
MIN_SCALE = 0.02
TOKEN_RESERVE_S = 0.1


def _bucket(rate_per_s: float, capacity: float) -> AsyncLimiter:
    """A leaky bucket of `capacity` draining at `rate_per_s`."""
    return AsyncLimiter(capacity, capacity / rate_per_s)


class Pacer:
    """Shared by all workers of one deployment."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:
        self.rpm_ceiling = rpm * HEADROOM if rpm else None
        self.tpm_ceiling = tpm * HEADROOM if tpm else None
        self.scale = 1.0
        self._clock = clock
        self._sleep = sleep
        self._not_before = 0.0
        self._last_cut = -1e9
        self._last_change = -1e9
        self._requests: AsyncLimiter | None = None
        self._tokens: AsyncLimiter | None = None
        self._recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=4096)
        self.waited = {"rpm": 0.0, "tpm": 0.0, "hold": 0.0}
        self._uncharged: list[AsyncLimiter] = []
        self._built = False

    # ---- rates

    def request_rate(self) -> float | None:
        return self.rpm_ceiling * self.scale / 60 if self.rpm_ceiling else None

    def token_rate(self) -> float | None:
        return self.tpm_ceiling * self.scale / 60 if self.tpm_ceiling else None

    def max_request_tokens(self) -> int | None:
        """Largest estimate one request should carry: under a second of token quota."""
        return int(self.tpm_ceiling / 60 * 0.9) if self.tpm_ceiling else None

    def _rebuild(self) -> None:
        request_rate, token_rate = self.request_rate(), self.token_rate()
        self._requests = _bucket(request_rate, 1.0) if request_rate else None
        self._tokens = _bucket(token_rate, max(1.0, token_rate * TOKEN_RESERVE_S)) if token_rate else None
        # aiolimiter starts empty and would let a whole capacity out at once: charge it first.
        self._uncharged = [b for b in (self._requests, self._tokens) if b is not None]
        self._built = True

    # ---- acquiring

    async def acquire(self, tokens: int) -> None:
        """Wait for the shared hold, then for a request slot and `tokens` of token budget."""
        if not self._built:
            self._rebuild()
        while self._uncharged:
            bucket = self._uncharged.pop()
            await bucket.acquire(bucket.max_rate)
        await self._wait_hold()
        if self._requests is not None:
            started = self._clock()
            await self._requests.acquire(1)
            self.waited["rpm"] += self._clock() - started
        if self._tokens is not None and tokens > 0:
            started = self._clock()
            await self._acquire_tokens(self._tokens, tokens)
            self.waited["tpm"] += self._clock() - started
        await self._wait_hold()  # a 429 may have come in while we waited
        self._recent.append((self._clock(), tokens))

    async def _acquire_tokens(self, bucket: AsyncLimiter, tokens: int) -> None:
        # acquire() raises above capacity: take a large estimate in capacity-sized pieces.
        remaining = float(tokens)
        while remaining > 0:
            piece = min(remaining, bucket.max_rate)
            await bucket.acquire(piece)
            remaining -= piece

    async def _wait_hold(self) -> None:
        while (delay := self._not_before - self._clock()) > 0:
            self.waited["hold"] += delay
            await self._sleep(delay)

    # ---- adapting

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: everyone waits out retry-after, and the rate drops (once per cool-down)."""
        now = self._clock()
        hold = retry_after if retry_after is not None else 1.0
        self._not_before = max(self._not_before, now + min(hold, 60.0))
        if now - self._last_cut < max(1.0, hold):
            return
        if self.rpm_ceiling is None and self.tpm_ceiling is None:
            self._learn_ceiling(now)
        self.scale = max(MIN_SCALE, self.scale * CUT)
        self._last_cut = self._last_change = now
        self._rebuild()

    def _learn_ceiling(self, now: float) -> None:
        """No limits in the spec: take what we achieved over the last seconds as the ceiling."""
        window = [(t, k) for t, k in self._recent if now - t <= 5.0]
        if len(window) >= 2:
            span = max(1.0, now - window[0][0])
            self.rpm_ceiling = len(window) / span * 60
            self.scale = 1.0

    def on_success(self, remaining_requests: int | None, remaining_tokens: int | None) -> None:
        """Raise the rate toward the ceiling while answers come back clean with headroom."""
        if self.scale >= 1.0:
            return
        now = self._clock()
        exhausted = remaining_requests == 0 or remaining_tokens == 0
        if exhausted or now - self._last_cut < 2.0 or now - self._last_change < 1.0:
            return
        self.scale = min(1.0, self.scale + RAISE_STEP)
        self._last_change = now
        self._rebuild()

    def state(self) -> str:
        """A few words for the progress line."""
        if self._not_before > self._clock():
            return "backing off: 429s"
        if self.scale < 1.0:
            return f"slowed to {self.scale:.0%} after 429s"
        if self.waited["tpm"] > self.waited["rpm"] and self.tpm_ceiling:
            return "paced by TPM"
        if self.rpm_ceiling:
            return "paced by RPM"
        return "unpaced"
