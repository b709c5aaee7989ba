"""The pacer: even spacing, no burst at start, cut on 429, recovery, the service's token count, holds."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import pytest

from pipeline.client.limiter import HEADROOM, Pacer
from pipeline.emulator.quotas import Limits, SlidingWindowQuota

from ..virtual_time import VirtualTimeLoop


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


def test_the_first_request_goes_at_once_then_one_per_interval() -> None:
    """At a whisper-like 3 RPM, holding the first request a whole interval would cost a cron job 20 s."""
    loop = VirtualTimeLoop()
    try:
        pacer = Pacer(rpm=3, tpm=None, clock=loop.time)

        async def three() -> list[float]:
            started = loop.time()
            times = []
            for _ in range(3):
                await pacer.acquire(1)
                times.append(loop.time() - started)
            return times

        times = loop.run_until_complete(three())
    finally:
        loop.close()
    assert times[0] < 0.01
    assert all(later - earlier >= 20 / HEADROOM - 0.01 for earlier, later in itertools.pairwise(times))


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


def _virtual_pacer(rpm: float) -> tuple[Pacer, list[float]]:
    now = [0.0]
    pacer = Pacer(rpm=rpm, tpm=None, clock=lambda: now[0])
    pacer._rebuild = lambda: None  # type: ignore[method-assign]
    return pacer, now


def test_a_429_while_the_full_spec_rate_was_admitted_holds_without_a_cut() -> None:
    pacer, now = _virtual_pacer(1200)
    for i in range(40):  # 20/s over 2 s: the spec's whole rate got through
        now[0] = i * 0.05
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.2)
    assert pacer.scale == 1.0
    assert pacer.hold_remaining() > 0.1


def test_a_429_below_the_spec_rate_cuts_to_what_the_service_admitted() -> None:
    pacer, now = _virtual_pacer(2400)  # the real quota is half of this
    for i in range(40):
        now[0] = i * 0.05
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.2)
    assert 0.4 < pacer.scale < 0.5


def test_above_what_was_admitted_the_pacer_probes_only_while_the_service_shows_room() -> None:
    pacer, now = _virtual_pacer(2400)
    for i in range(40):
        now[0] = i * 0.05
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.2)
    learned = pacer.scale / 0.95 * HEADROOM
    for _ in range(5):  # back to just under the admitted rate, windows full or not
        now[0] += 1.1
        pacer.on_success(1, 0, None)
    assert abs(pacer.scale - learned) < 1e-9
    for _ in range(5):  # full windows: no probing above it
        now[0] += 1.1
        pacer.on_success(1, 0, None)
    assert abs(pacer.scale - learned) < 1e-9
    now[0] += 1.1
    pacer.on_success(1, 3, None)  # room: one small step up
    assert learned < pacer.scale <= learned * 1.011


async def test_slots_gone_stale_in_a_rate_change_do_not_use_up_the_window() -> None:
    pacer = Pacer(rpm=1200, tpm=None)
    times: list[float] = []

    async def worker() -> None:
        while len(times) < 40:
            await pacer.acquire(1)
            times.append(time.monotonic())

    async def change_rate() -> None:
        await asyncio.sleep(0.5)
        pacer.scale = 0.98
        pacer._rebuild()  # every waiter's slot goes stale

    await asyncio.gather(change_rate(), *(worker() for _ in range(16)))
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate > 0.85 * 20  # phantom arrivals in the window check would halve it


def test_with_much_room_in_the_window_the_rate_climbs_quickly() -> None:
    pacer, now = _virtual_pacer(1200)  # 20 requests per 1 s window
    for i in range(20):
        now[0] = i * 0.1  # a 429 at half the rate: a bad moment, not the quota
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.2)
    assert pacer.scale < 0.6
    for _ in range(12):
        now[0] += 1.1
        pacer.on_success(1, 10, None)
    assert pacer.scale == 1.0


def test_a_ceiling_learned_without_limits_climbs_while_the_service_shows_room() -> None:
    pacer, now = _virtual_pacer(0)
    for i in range(20):
        now[0] = i * 0.1  # 10 requests/s over 2 s
        pacer.on_success(1, None, None)
    pacer.on_rate_limited(0.1)
    learned = pacer.rpm_ceiling
    assert learned is not None and 500 < learned < 650
    for _ in range(4):
        now[0] += 1.1
        pacer.on_success(1, 0, None)  # full windows: stay
    assert pacer.rpm_ceiling == learned
    for _ in range(4):
        now[0] += 1.1
        pacer.on_success(1, 1000, None)  # much room: double per quiet second
    assert pacer.rpm_ceiling >= 8 * learned


def test_a_429_in_the_first_moments_of_a_run_holds_but_learns_nothing() -> None:
    pacer, now = _virtual_pacer(0)
    for i in range(3):
        now[0] = i * 0.01
        pacer.on_success(1, None, None)
    pacer.on_rate_limited(0.2)
    assert pacer.rpm_ceiling is None
    assert pacer.hold_remaining() > 0.1


def test_at_one_request_per_window_a_jitter_429_keeps_the_rate() -> None:
    for rpm in (60, 3):
        pacer, now = _virtual_pacer(rpm)
        gap = 60 / (rpm * HEADROOM)
        for i in range(6):
            now[0] = i * gap
            pacer.on_success(1, 0, None)  # one request fills the window: remaining is always 0
        pacer.on_rate_limited(0.05)
        assert pacer.scale == 1.0, rpm


def test_at_one_request_per_window_a_cut_rate_recovers() -> None:
    pacer, now = _virtual_pacer(60)
    pacer.on_rate_limited(1.0)  # nothing admitted yet to go by: a blind cut
    assert pacer.scale < 1.0
    for _ in range(10):
        now[0] += 1.1
        pacer.on_success(1, 0, None)
    assert pacer.scale == 1.0


def test_above_the_admitted_rate_the_probe_step_follows_the_room_the_service_reports() -> None:
    pacer, now = _virtual_pacer(2400)
    for i in range(40):
        now[0] = i * 0.05
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.2)
    for _ in range(3):  # back to just under the admitted rate
        now[0] += 1.1
        pacer.on_success(1, 0, None)
    level = pacer.scale
    now[0] += 1.1
    pacer.on_success(1, 3, None, 20, None)  # a tenth of the window free past this request: a 5 % step
    assert abs(pacer.scale - level * 1.05) < 1e-9
    level = pacer.scale
    now[0] += 1.1
    pacer.on_success(1, 18, 1001, 20, 10_000)  # requests have room, tokens are the tighter: a 5 % step
    assert abs(pacer.scale - level * 1.05) < 1e-9


def test_an_isolated_429_below_the_full_rate_holds_but_a_second_one_cuts() -> None:
    pacer, now = _virtual_pacer(1200)

    def answers(start: int, stop: int) -> None:
        for i in range(start, stop):  # 93 % of the spec's rate admitted (faults ate the rest)
            now[0] = i * 0.054
            pacer.on_success(1, 0, None)

    answers(0, 40)
    pacer.on_rate_limited(0.01)
    assert pacer.scale == 1.0  # the first 429 in a while: spurious or jitter
    answers(40, 60)
    pacer.on_rate_limited(0.01)
    assert 0.85 < pacer.scale < 0.95  # a second one a second later: the quota is lower than the spec says


def test_after_a_cut_a_lone_spurious_429_does_not_cut_again() -> None:
    pacer, now = _virtual_pacer(1200)
    for i in range(40):
        now[0] = i * 0.1  # half the spec's rate: the service's quota is lower
        pacer.on_success(1, 0, None)
    pacer.on_rate_limited(0.01)
    cut = pacer.scale
    assert cut < 0.6
    for i in range(400):  # 40 s at the cut rate, admitted in full
        now[0] = 4.0 + i * 60 / (1200 * HEADROOM * cut)
        pacer.on_success(1, 0, None)
    level = pacer.scale
    pacer.on_rate_limited(0.01)  # one spurious 429, the first in 10 s
    assert pacer.scale == level


# ---- pacing by the service's own token count, and holds from evidence about the quota


@dataclass
class Served:
    """What a simulated service admitted (arrival time, its own charge) and how often it refused."""

    admitted: list[tuple[float, int]] = field(default_factory=list)
    refused: int = 0

    def rate(self, since: float) -> float:
        """The service's tokens per second it admitted from `since` on."""
        later = [(t, k) for t, k in self.admitted if t >= since]
        return sum(k for _, k in later) / (later[-1][0] - since)


def serve(factor: float, spec_tpm: int, quota_tpm: int, requests: int = 150, tokens: int = 50,
          workers: int = 8) -> tuple[Pacer, Served]:
    """Workers sending through a pacer to a service that charges `factor` times our estimate against its
    own sliding 1 s windows (the emulator's quota rule), with its x-ratelimit headers; virtual time."""
    loop = VirtualTimeLoop()
    pacer = Pacer(rpm=None, tpm=spec_tpm, clock=loop.time, sleep=asyncio.sleep)
    quota = SlidingWindowQuota(Limits(None, quota_tpm, 1.0))
    served = Served()
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            slot = await pacer.acquire_slot(tokens)
            decision = quota.admit(loop.time(), round(tokens * factor))
            if not decision.admitted:
                served.refused += 1
                await asyncio.sleep(0.001)
                pacer.on_rate_limited(decision.retry_after_s, slot=slot, remaining_tokens=decision.remaining_tokens)
                continue
            served.admitted.append((loop.time(), round(tokens * factor)))
            await asyncio.sleep(0.05)  # the answer's latency: its headers say how the window stood at arrival
            pacer.on_success(tokens, None, decision.remaining_tokens, None, decision.limit_tokens, slot=slot)

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return pacer, served


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_pacing_follows_the_service_token_count_not_our_estimate(factor: float) -> None:
    pacer, served = serve(factor, spec_tpm=60_000, quota_tpm=60_000)  # 1,000 of its tokens a second
    assert pacer.ratio == pytest.approx(factor, rel=0.02)
    assert served.rate(since=2.0) >= 0.97 * 1000  # our estimate alone: 0.8 -> 0.79 of the quota
    assert served.refused <= 1  # ... and 1.25 -> a 429 a second
    assert pacer.max_request_tokens() == int(60_000 * HEADROOM / 60 / 8 / pacer.ratio)


def test_the_ratio_stays_1_when_the_service_counts_as_we_do_or_the_spec_is_not_its_quota() -> None:
    pacer, served = serve(1.0, spec_tpm=60_000, quota_tpm=60_000)
    assert (pacer.ratio, pacer.generation, served.refused) == (1.0, 1, 0)  # never re-paced
    # A limit header (500 a window) that is not the spec's TPM over any of the service's windows: a
    # ratio would take in the spec's error too, which the 429s already correct.
    pacer, _ = serve(1.25, spec_tpm=60_000, quota_tpm=30_000, requests=40)
    assert pacer.ratio == 1.0


def _held_pacer(max_hold_s: float = 60.0) -> tuple[Pacer, list[float]]:
    now = [0.0]
    pacer = Pacer(rpm=1200, tpm=None, clock=lambda: now[0], max_hold_s=max_hold_s)
    pacer._rebuild = lambda: None  # type: ignore[method-assign]
    return pacer, now


def test_a_request_refused_again_holds_no_one() -> None:
    pacer, now = _held_pacer()
    pacer.on_rate_limited(0.5)  # a first refusal without headers: taken for the quota
    assert (pacer.holds, pacer.held_s) == (1, 0.5)
    for _ in range(2, 6):  # the same row refused on every later attempt, the others get through
        now[0] += 0.6
        pacer.on_rate_limited(0.5, repeat=True)
    assert pacer.holds == 1
    assert pacer.hold_remaining() == 0.0


def test_the_429s_own_headers_decide_whether_it_holds_everyone() -> None:
    pacer, _ = _held_pacer()
    pacer.on_rate_limited(0.5, remaining_requests=7, remaining_tokens=5000)  # its window has room
    assert pacer.holds == 0 and pacer.hold_remaining() == 0.0
    pacer.on_rate_limited(0.5, repeat=True, remaining_requests=0, remaining_tokens=5000)  # full, even on a retry
    assert pacer.holds == 1 and pacer.hold_remaining() == 0.5


def test_the_shared_hold_is_capped_by_max_hold_s() -> None:
    pacer, _ = _held_pacer(max_hold_s=5.0)
    pacer.on_rate_limited(86_400.0)  # a retry-after of a day
    assert pacer.hold_remaining() == 5.0
