"""Sliding-window quotas as Azure applies them (pure logic: no clock, no I/O).

Azure turns a per-minute quota into a per-window one: with RPM r and a window
of w seconds, a request is admitted when the last w seconds hold fewer than
r*w/60 requests. Tokens likewise: the request's estimate (prompt + max_tokens)
is charged at arrival and it is admitted while the window holds fewer than
tpm*w/60 tokens.

Gateways count differently (window_kind "fixed"): LiteLLM counts per clock minute, from zero at
every minute's start whatever came just before, so a window may take its whole quota at once and
a refusal lasts until the window's end.

Two details keep the long-run rate equal to the quota:
- A request quota below one per window (RPM 6 with 10 s windows is fine, RPM 6
  with 1 s windows is not) stretches the window to 60/rpm seconds, one request.
  A fractional one rounds down (RPM 90 over 1 s admits 1 per second), so the
  window never holds more than rpm*w/60 requests.
- A charge bigger than a whole window's tokens stays in the window for
  proportionally longer, so one huge request cannot buy a fresh window each time.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

# Reported in the x-ratelimit headers when a deployment has no quota.
UNLIMITED_REQUESTS = 100_000
UNLIMITED_TOKENS = 10_000_000


@dataclass(frozen=True)
class Decision:
    """One arrival's verdict and what the x-ratelimit-* headers should say."""

    admitted: bool
    retry_after_s: float
    remaining_requests: int
    remaining_tokens: int
    limit_requests: int
    limit_tokens: int
    reason: str | None = None  # "requests" or "tokens" when refused


@dataclass(frozen=True)
class Limits:
    rpm: int | None
    tpm: int | None
    window_s: float
    kind: str = "sliding"  # or "fixed": clock-aligned windows of window_s


class SlidingWindowQuota:
    """RPM and TPM for one deployment over a sliding window."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._request_window, self._request_limit = _request_window(limits)
        self._token_limit = (limits.tpm * limits.window_s / 60) if limits.tpm else None
        self._requests: deque[float] = deque()  # arrival times, oldest first
        self._tokens: list[tuple[float, int]] = []  # heap of (expiry time, charge)
        self._used = 0  # sum of the charges in _tokens

    def admit(self, now: float, tokens: int) -> Decision:
        """Admit (and charge) or refuse one request arriving at `now`."""
        self._expire(now)
        wait_requests = self._requests_wait(now)
        wait_tokens = self._tokens_wait(now)
        if wait_requests > 0 or wait_tokens > 0:
            reason = "requests" if wait_requests >= wait_tokens else "tokens"
            return self._decision(False, max(wait_requests, wait_tokens), reason)
        if self._request_limit is not None:
            self._requests.append(now)
        if self._token_limit is not None:
            stay = self.limits.window_s * max(1.0, tokens / self._token_limit)
            heapq.heappush(self._tokens, (now + stay, tokens))
            self._used += tokens
        return self._decision(True, 0.0, None)

    def peek(self, now: float) -> Decision:
        """The current headroom, charging nothing (for answers refused before the quota check)."""
        self._expire(now)
        return self._decision(True, 0.0, None)

    def _expire(self, now: float) -> None:
        while self._requests and self._requests[0] <= now - self._request_window:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= now:
            self._used -= heapq.heappop(self._tokens)[1]

    def _requests_wait(self, now: float) -> float:
        """Seconds until the window has room for one more request (0: room now)."""
        if self._request_limit is None or len(self._requests) < self._request_limit:
            return 0.0
        blocking = self._requests[len(self._requests) - self._request_limit]
        return blocking + self._request_window - now

    def _tokens_wait(self, now: float) -> float:
        """Seconds until the window holds fewer tokens than its quota (0: now)."""
        if self._token_limit is None:
            return 0.0
        used = self._used
        if used < self._token_limit:
            return 0.0
        for end, charge in sorted(self._tokens):
            used -= charge
            if used < self._token_limit:
                return end - now
        return 0.0  # not reached: an empty window is always below a positive limit

    def _decision(self, admitted: bool, wait: float, reason: str | None) -> Decision:
        limit_r = self._request_limit if self._request_limit is not None else UNLIMITED_REQUESTS
        limit_t = math.floor(self._token_limit) if self._token_limit is not None else UNLIMITED_TOKENS
        used_r = len(self._requests) if self._request_limit is not None else 0
        return Decision(
            admitted=admitted,
            retry_after_s=wait,
            remaining_requests=max(0, limit_r - used_r),
            remaining_tokens=max(0, limit_t - self._used),
            limit_requests=limit_r,
            limit_tokens=limit_t,
            reason=reason,
        )


def _request_window(limits: Limits) -> tuple[float, int | None]:
    """The window length and whole number of requests it may hold."""
    if not limits.rpm:
        return limits.window_s, None
    per_window = limits.rpm * limits.window_s / 60
    if per_window < 1:
        return 60 / limits.rpm, 1
    return limits.window_s, math.floor(per_window + 1e-9)


class FixedWindowQuota:
    """RPM and TPM for one deployment per clock-aligned window [k*window_s, (k+1)*window_s), counted
    from zero in each (a gateway's per-minute count). A refusal waits for the window's end."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._request_limit = max(1, math.floor(limits.rpm * limits.window_s / 60 + 1e-9)) if limits.rpm else None
        self._token_limit = (limits.tpm * limits.window_s / 60) if limits.tpm else None
        self._window = -1
        self._requests = 0
        self._used = 0

    def admit(self, now: float, tokens: int) -> Decision:
        """Admit (and charge) or refuse one request arriving at `now`."""
        self._roll(now)
        full_requests = self._request_limit is not None and self._requests >= self._request_limit
        full_tokens = self._token_limit is not None and self._used >= self._token_limit
        if full_requests or full_tokens:
            wait = (self._window + 1) * self.limits.window_s - now
            return self._decision(False, wait, "requests" if full_requests else "tokens")
        self._requests += 1
        self._used += tokens
        return self._decision(True, 0.0, None)

    def peek(self, now: float) -> Decision:
        self._roll(now)
        return self._decision(True, 0.0, None)

    def _roll(self, now: float) -> None:
        window = math.floor(now / self.limits.window_s)
        if window != self._window:
            self._window, self._requests, self._used = window, 0, 0

    def _decision(self, admitted: bool, wait: float, reason: str | None) -> Decision:
        limit_r = self._request_limit if self._request_limit is not None else UNLIMITED_REQUESTS
        limit_t = math.floor(self._token_limit) if self._token_limit is not None else UNLIMITED_TOKENS
        used_r = self._requests if self._request_limit is not None else 0
        return Decision(admitted, wait, max(0, limit_r - used_r), max(0, limit_t - self._used), limit_r, limit_t,
                        reason)


Quota = SlidingWindowQuota | FixedWindowQuota


class QuotaBook:
    """One quota per deployment key, rebuilt when its limits change."""

    def __init__(self) -> None:
        self._quotas: dict[str, Quota] = {}

    def admit(self, key: str, now: float, tokens: int, limits: Limits) -> Decision:
        return self._quota(key, limits).admit(now, tokens)

    def peek(self, key: str, now: float, limits: Limits) -> Decision:
        return self._quota(key, limits).peek(now)

    def _quota(self, key: str, limits: Limits) -> Quota:
        quota = self._quotas.get(key)
        if quota is None or quota.limits != limits:
            kind = FixedWindowQuota if limits.kind == "fixed" else SlidingWindowQuota
            quota = self._quotas[key] = kind(limits)
        return quota

    def clear(self) -> None:
        self._quotas.clear()
