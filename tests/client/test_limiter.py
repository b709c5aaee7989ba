"""The pacer: even spacing, no burst at start, cut on 429, recovery."""

from __future__ import annotations

import asyncio
import time

from pipeline.client.limiter import HEADROOM, Pacer


async def arrivals(pacer: Pacer, n: int, tokens: int = 1) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await pacer.acquire(tokens)
        times.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_requests_are_spaced_evenly_without_a_start_burst() -> None:
    pacer = Pacer(rpm=1200, tpm=None)  # 20/s -> 19.4/s with headroom
    times = await arrivals(pacer, 30)
    assert max_in_window(times, 0.25) <= 6  # a burst would put all 30 at t=0
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 0.85 * 20 * HEADROOM < rate <= 20


async def test_token_budget_paces_large_requests() -> None:
    pacer = Pacer(rpm=None, tpm=60_000)  # 1000 tokens/s
    start = time.monotonic()
    await arrivals(pacer, 4, tokens=250)  # 1000 tokens
    assert time.monotonic() - start >= 0.9


async def test_a_429_holds_everyone_and_cuts_the_rate() -> None:
    pacer = Pacer(rpm=6000, tpm=None)
    await pacer.acquire(1)
    before = pacer.request_rate()
    pacer.on_rate_limited(0.3)
    assert pacer.request_rate() < before
    start = time.monotonic()
    await pacer.acquire(1)
    assert time.monotonic() - start >= 0.28
    assert pacer.state().startswith(("backing off", "slowed"))


def test_rate_recovers_after_quiet_success() -> None:
    now = [0.0]
    pacer = Pacer(rpm=600, tpm=None, clock=lambda: now[0])
    pacer._built = True  # no event loop needed for the arithmetic
    pacer.on_rate_limited(None)
    cut = pacer.scale
    now[0] += 5
    pacer._rebuild = lambda: None  # type: ignore[method-assign]
    for _ in range(30):
        now[0] += 1.1
        pacer.on_success(1, 10, 1000)
    assert cut < 1.0
    assert pacer.scale == 1.0


def test_unlimited_pacer_learns_a_ceiling_from_a_429() -> None:
    now = [0.0]
    pacer = Pacer(rpm=None, tpm=None, clock=lambda: now[0])
    pacer._rebuild = lambda: None  # type: ignore[method-assign]
    for i in range(100):
        pacer._admitted.append((i * 0.05, 1))  # 20 requests/s over 5 s
    now[0] = 5.0
    pacer.on_rate_limited(1.0)
    assert pacer.rpm_ceiling is not None
    assert 0.6 * 1200 < pacer.request_rate() * 60 < 1200
