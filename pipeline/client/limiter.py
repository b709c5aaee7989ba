"""Pacing: a requests/min and a tokens/min bucket (aiolimiter), one adaptive rate, one shared hold.

Azure admits a request when the last 1-10 s hold fewer than quota*window/60 requests (and
tokens, counted at arrival). So the buckets hold almost nothing in reserve (two requests; a
fifth of a second of tokens) and start full: requests leave evenly spaced, never as a burst,
and a one-second window check keeps lumpy token estimates under the quota.
Tokens are paced as the service counts them: the TPM quota is in the service's tokens, and our
estimate times the ratio learned from its headers (accounting.py) is what a request costs in it
(the bucket runs at the quota over the ratio; the window check and the largest batch follow), so a
service counting less than our deliberately high estimate gets its whole quota and one counting
more gets no 429s.
The configured limits are a ceiling. A 429 that is evidence about the quota holds every worker
until its retry-after has passed (at most max_hold_s, [limits] max_retry_wait_s); a request
refused again on a later attempt is not: it waits its own retry-after, and the others go on.
If the service was admitting the whole configured rate, a hold is all (the 429 came from timing
jitter at the quota's edge); otherwise the rate drops to a little under what the service admitted.
Quiet success brings it back to that level quickly, then probes above it a percent a second while
the service's headers show room. Without limits in the spec, the first 429 sets a ceiling from the
achieved rate, raised again while answers show room.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiolimiter import AsyncLimiter

from pipeline.client.accounting import ServiceTokenCount, Slot

HEADROOM = 0.985  # pacing at exactly the quota earns 429s from timing jitter alone
CUT = 0.7
RAISE_STEP = 0.05
MIN_SCALE = 0.02
# A little reserve in each bucket: a timer that wakes a millisecond late then costs no throughput.
# What a reserve could let out at once after a quiet spell is bounded by the window check below.
REQUEST_RESERVE = 2.0
TOKEN_RESERVE_S = 0.2
ADMITTED_WINDOW_S = 2.0
ADMITTED_REQUESTS = 4.5  # ... or long enough to hold this many requests at the ceiling's rate
WINDOW_S = 1.0  # the shortest window Azure evaluates quota over
SERVICE_WINDOWS_S = (1.0, 10.0)  # the windows Azure evaluates quota over
ADMITTED_SHARE = 0.95  # after a 429, pace a little under what the service let through
PROBE_STEP = 0.01  # then try above it again, at least a percent a second
MUCH_ROOM = 0.25  # or quicker while the service's window is far from full
PROBE_GAIN = 0.5  # with the service's limit headers: raise by half the share of its window still free
MAX_PROBE_STEP = 0.1
LEARNED_GROWTH_FAST = 2.0  # a ceiling learned without limits in the spec, per quiet second with much room
LEARNED_GROWTH_BLIND = 1.25  # ... and when the service sends no x-ratelimit-remaining headers
GIVE_UP_CHECK_S = 0.25  # how often a held attempt asks whether another deployment would be sooner
AT_CEILING_SHARE = 0.97  # a 429 while the service admits this share of the spec's rate is jitter
ISOLATED_429_S = 10.0  # ... and so is the first 429 for this long while it admits ISOLATED_SHARE
ISOLATED_SHARE = 0.9
DEFAULT_HOLD_S = 1.0  # a 429 that says no wait
MAX_HOLD_S = 60.0  # [limits] max_retry_wait_s's default: the longest shared hold


def _room_share(remaining_requests: int | None, remaining_tokens: int | None, limit_requests: int | None,
                limit_tokens: int | None, tokens: int) -> float | None:
    """The share of the service's window still free by its own headers, less one request's worth (a
    window one request from full is full for pacing); the tighter of requests and tokens. None when the
    service does not say. Unit-free, so it holds whatever window length the service counts over."""
    shares = [(remaining - size) / limit for remaining, limit, size in ((remaining_requests, limit_requests, 1),
                                                                        (remaining_tokens, limit_tokens, tokens))
              if remaining is not None and limit]
    return max(0.0, min(shares)) if shares else None


class Pacing(Protocol):
    """What the client and the router ask of a deployment's pacer: a Pacer, or a share of one that workers
    on several machines use together (cluster/quota.py)."""

    async def acquire_slot(self, tokens: int, give_up: Callable[[], bool] | None = None) -> Slot: ...

    def on_rate_limited(self, retry_after: float | None, generation: int | None = None, *, slot: Slot | None = None,
                        repeat: bool = False, remaining_requests: int | None = None,
                        remaining_tokens: int | None = None) -> None: ...

    def note_admitted(self, tokens: int) -> None: ...

    def on_success(self, tokens: int, remaining_requests: int | None, remaining_tokens: int | None,
                   limit_requests: int | None = None, limit_tokens: int | None = None, *,
                   slot: Slot | None = None) -> None: ...

    def request_rate(self) -> float | None: ...

    def token_rate(self) -> float | None: ...

    def max_request_tokens(self) -> int | None: ...

    def hold_remaining(self) -> float: ...

    def state(self) -> str: ...


class Rerouted(Exception):
    """An attempt gave up waiting in this pacer: the caller routes it to another deployment."""


def request_window(rpm: float) -> tuple[float, int]:
    """(length, requests it holds) of the service's request window: whole requests per WINDOW_S, so
    RPM 90 admits one a second, not 1.5; below one per window, one request per 60/rpm seconds."""
    per_window = rpm * WINDOW_S / 60
    if per_window < 1:
        return 60 / rpm, 1
    return WINDOW_S, math.floor(per_window + 1e-9)


def _bucket(rate_per_s: float, capacity: float) -> AsyncLimiter:
    """A leaky bucket of `capacity` draining at `rate_per_s`."""
    return AsyncLimiter(capacity, capacity / rate_per_s)


class Pacer:
    """Shared by all workers of one deployment."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, max_hold_s: float = MAX_HOLD_S,
                 on_hold: Callable[[], None] | None = None) -> None:
        self.rpm_ceiling = rpm * HEADROOM if rpm else None
        self.tpm_ceiling = tpm * HEADROOM if tpm else None  # in the service's tokens
        self.scale = 1.0
        self.max_hold_s = max_hold_s
        self.holds = 0  # shared holds begun or lengthened, and their total length: what 429s cost everyone
        self.held_s = 0.0
        self._count = ServiceTokenCount()
        self._ceiling_from_spec = bool(rpm or tpm)
        self._clock = clock
        self._sleep = sleep
        self._on_hold = on_hold  # called each time a worker is held by a 429 (the crash tests' hook)
        self._not_before = 0.0
        self._last_cut = -1e9
        self._last_429 = -1e9
        self._last_change = -1e9
        self._requests: AsyncLimiter | None = None
        self._tokens: AsyncLimiter | None = None
        self._admitted: collections.deque[tuple[float, int]] = collections.deque(maxlen=4096)
        self._learned: float | None = None
        self.waited = {"rpm": 0.0, "tpm": 0.0, "hold": 0.0}
        self._uncharged: list[AsyncLimiter] = []
        self._token_lock = asyncio.Lock()
        self._window: list[tuple[float, int]] = []  # heap: (when it leaves the service's window, tokens)
        self._window_tokens = 0
        self._arrivals: collections.deque[float] = collections.deque()  # requests in the service's window
        self.generation = 0
        self._built = False

    # ---- rates

    def request_rate(self) -> float | None:
        return self.rpm_ceiling * self.scale / 60 if self.rpm_ceiling else None

    def token_rate(self) -> float | None:
        """Our estimated tokens per second: the service's rate over what it counts per token of ours."""
        return self.tpm_ceiling * self.scale / 60 / self.ratio if self.tpm_ceiling else None

    @property
    def ratio(self) -> float:
        """The service's token count per token of our estimate (1.0 until its headers say otherwise)."""
        return self._count.ratio

    def max_request_tokens(self) -> int | None:
        """Largest estimate a batched request should carry: an eighth of a second of token quota,
        so requests stay small against the service's shortest window and pace evenly."""
        return max(1, int(self.tpm_ceiling / 60 / 8 / self.ratio)) if self.tpm_ceiling else None

    def _rebuild(self) -> None:
        request_rate, token_rate = self.request_rate(), self.token_rate()
        self._requests = _bucket(request_rate, REQUEST_RESERVE) if request_rate else None
        self._tokens = _bucket(token_rate, max(2.0, token_rate * TOKEN_RESERVE_S)) if token_rate else None
        self._uncharged = [b for b in (self._requests, self._tokens) if b is not None]
        self.generation += 1
        self._built = True

    # ---- acquiring

    async def acquire(self, tokens: int, give_up: Callable[[], bool] | None = None) -> int:
        """acquire_slot, for callers that need only the rate generation."""
        return (await self.acquire_slot(tokens, give_up)).generation

    async def acquire_slot(self, tokens: int, give_up: Callable[[], bool] | None = None) -> Slot:
        """Wait for the shared hold, a request slot and `tokens` (our estimate) of budget.

        The Slot returned says when the request left and at which rate generation; hand it back to
        on_success / on_rate_limited, which match the service's headers to it.

        `give_up` is asked whenever a hold or a rate change makes the wait longer; when it says
        yes, Rerouted is raised (another deployment would take the request sooner).

        A slot taken from buckets that were replaced meanwhile (the rate changed) or before a hold
        began is stale: take a fresh one, or a burst of old-rate slots would follow every 429.
        A stale slot never enters the window count either: 32 workers leaving the old bucket would
        otherwise fill the window with requests never sent and halve the rate after every change.
        """
        if not self._built:
            self._rebuild()
        while True:
            await self._wait_hold(give_up)
            generation = self.generation
            await self._charge_new_buckets()
            started = self._clock()
            if self._requests is not None:
                await self._requests.acquire(1)
                self.waited["rpm"] += self._clock() - started
            if self._tokens is not None and tokens > 0:
                started = self._clock()
                slot = await self._acquire_tokens(tokens, generation)
                self.waited["tpm"] += self._clock() - started
            else:
                slot = await self._window_check(tokens, generation, counts_tokens=False)
            if slot is not None:
                return slot
            if give_up is not None and give_up():
                raise Rerouted

    def _stale(self, generation: int) -> bool:
        return generation != self.generation or self._not_before > self._clock()

    async def _charge_new_buckets(self) -> None:
        # aiolimiter starts empty and would let a whole capacity out at once: charge it first, all but one
        # request's worth, so the first request goes at once (a quota of 3 RPM would hold it 20 s) and the
        # rest follow at the rate. One more in the first window stays inside the HEADROOM under the quota.
        while self._uncharged:
            bucket = self._uncharged.pop()
            if bucket.max_rate > 1:
                await bucket.acquire(bucket.max_rate - 1)

    async def _acquire_tokens(self, tokens: int, generation: int) -> Slot | None:
        """Pay `tokens` into the token bucket, then pass the one-second window check.

        acquire() raises above capacity, so a large estimate is paid in capacity-sized pieces,
        one request at a time (the lock is FIFO): interleaved pieces would finish every large
        request at once, a burst. Then, like the service, refuse to let the last second hold
        more than a second of quota: lumpy requests would otherwise overshoot it. The bucket is
        read inside the lock and a stale slot pays nothing: the queue behind the lock would
        otherwise pay, one by one, into a bucket already replaced.
        """
        async with self._token_lock:
            bucket = self._tokens
            if bucket is None or self._stale(generation):
                return None
            remaining = float(tokens)  # our estimate: the bucket's rate is the service's over the ratio
            while remaining > 0:
                piece = min(remaining, bucket.max_rate / 2)
                await bucket.acquire(piece)
                remaining -= piece
            return await self._window_check(tokens, generation)

    async def _window_check(self, tokens: int, generation: int, counts_tokens: bool = True) -> Slot | None:
        """Wait until the service's windows have room for one more request and its tokens, and count
        both at that instant: the moment it leaves. (A request slot taken before a token wait would
        otherwise leave late, closer to the next one than the rate allows.) None, counting nothing,
        when the slot went stale meanwhile."""
        counted = tokens if counts_tokens else 0
        while True:
            if self._stale(generation):
                return None
            now = self._clock()
            wait = max(self._requests_wait(now), self._tokens_wait(now, counted))
            if wait <= 0:
                return self._leave(now, tokens, counted, generation)
            await self._sleep(wait + 0.001)

    def _leave(self, now: float, tokens: int, counted: int, generation: int) -> Slot:
        """Count a request leaving now in our copies of the service's windows."""
        if self.rpm_ceiling:
            self._arrivals.append(now)
        if counted > 0 and self.tpm_ceiling:
            # Like the service, a charge over a window's worth stays proportionally longer. Our
            # estimates are kept, not the service's tokens: a new ratio then applies to the past too.
            stay = WINDOW_S * max(1.0, counted * self.ratio / self._token_allowance())
            heapq.heappush(self._window, (now + stay, counted))
            self._window_tokens += counted
        slot = Slot(generation, now, tokens)
        if tokens > 0 and self.tpm_ceiling:
            self._count.sent.add(slot)
        return slot

    def _tokens_wait(self, now: float, tokens: int) -> float:
        """Seconds until the last second has room for `tokens` (a lone large request always has)."""
        while self._window and self._window[0][0] <= now:
            self._window_tokens -= heapq.heappop(self._window)[1]
        if tokens <= 0 or not self.tpm_ceiling or not self._window:
            return 0.0
        fits = (self._window_tokens + tokens) * self.ratio <= self._token_allowance()
        return 0.0 if fits else self._window[0][0] - now

    def _token_allowance(self) -> float:
        """The service's tokens it lets one window hold: the configured quota, not the paced rate."""
        return (self.tpm_ceiling or 0) / HEADROOM / 60 * WINDOW_S

    def _requests_wait(self, now: float) -> float:
        """Seconds until the service's request window has room for one more request."""
        if not self.rpm_ceiling:
            return 0.0
        length, room = request_window(self.rpm_ceiling / HEADROOM)
        length /= HEADROOM  # a little longer than the service's window: a request can reach it a few ms late
        while self._arrivals and self._arrivals[0] <= now - length:
            self._arrivals.popleft()
        if len(self._arrivals) < room:
            return 0.0
        return self._arrivals[len(self._arrivals) - room] + length - now

    async def _wait_hold(self, give_up: Callable[[], bool] | None) -> None:
        while (delay := self._not_before - self._clock()) > 0:
            if self._on_hold is not None:
                self._on_hold()
            if give_up is not None:
                if give_up():
                    raise Rerouted
                delay = min(delay, GIVE_UP_CHECK_S)
            self.waited["hold"] += delay
            await self._sleep(delay)

    # ---- adapting

    def on_rate_limited(self, retry_after: float | None, generation: int | None = None, *, slot: Slot | None = None,
                        repeat: bool = False, remaining_requests: int | None = None,
                        remaining_tokens: int | None = None) -> None:
        """A 429. When it is evidence about the quota, everyone waits out retry-after and the rate
        drops to what the service admitted; when not, only the refused request waits (its retry wait).

        `repeat`: the request was sent before and failed (its refusal again says little about the
        quota). `remaining_*`: the 429's own x-ratelimit headers, when the caller has them.
        A 429 for a request sent at an older rate says nothing about the current one: hold, no cut.
        """
        now = self._clock()
        if slot is not None:
            generation = slot.generation
            self._count.sent.refuse(slot)  # charged nothing: not in our side of the service's window
        if not self._quota_evidence(repeat, remaining_requests, remaining_tokens, slot.tokens if slot else 0):
            return
        self._hold(now, retry_after)
        self._adapt(now, generation)

    def _adapt(self, now: float, generation: int | None) -> None:
        """Evidence about the quota: pace at what the service admitted (or hold only, see _at_ceiling)."""
        if generation is not None and generation != self.generation:
            return
        if not self._ceiling_from_spec:
            self._learn_ceiling(now)
            self._last_cut = self._last_change = now
            self._rebuild()
            return
        if self._at_ceiling(now):
            return
        admitted = self._admitted_scale(now)
        # What the service let through is the best estimate of the real quota: pace just under it.
        # A blind multiplicative cut only when there is nothing measured to go by.
        cut = min(self.scale, admitted * ADMITTED_SHARE) if admitted else self.scale * CUT
        self.scale = max(MIN_SCALE, cut)
        self._learned = admitted
        self._last_cut = self._last_change = now
        self._rebuild()

    def _quota_evidence(self, repeat: bool, remaining_requests: int | None, remaining_tokens: int | None,
                        tokens: int) -> bool:
        """Whether a 429 tells about the quota, so that every worker should wait, or only about the
        request it refused. The 429's own headers decide when there are any: a window without room for
        this request is the quota; a window with room is not (a row the service always refuses while
        others get through made a 1,000-row job 20x slower when each of its 429s held every worker).
        Without headers a first refusal is taken for the quota, as before; the same request refused
        again is not: its own wait follows, and refusals of other requests hold the pool themselves."""
        checks = []
        if remaining_requests is not None:
            checks.append(remaining_requests <= 0)
        if remaining_tokens is not None:
            checks.append(remaining_tokens < max(1.0, tokens * self.ratio))
        if checks:
            return any(checks)
        return not repeat

    def _hold(self, now: float, retry_after: float | None) -> None:
        """Hold every worker until retry-after has passed (the service's word: neither shortened nor
        padded), at most max_hold_s; count what the hold adds."""
        until = now + min(retry_after if retry_after is not None else DEFAULT_HOLD_S, self.max_hold_s)
        if until > self._not_before:
            self.holds += 1
            self.held_s += until - max(self._not_before, now)
            self._not_before = until

    def _at_ceiling(self, now: float) -> bool:
        """The service admitted the spec's full rate until this 429: the quota is what the spec says
        and the 429 came from timing jitter at its edge. Or the 429 is the first in a while and the
        service admitted nearly the rate we pace at (faults such as dropped connections make the
        measure read low): spurious, as a busy backend sends now and then. Hold, but keep the rate:
        a cut would cost more throughput than the rare 429 it saves, and a real quota below our
        rate answers 429 again soon."""
        previous, self._last_429 = self._last_429, now
        admitted = self._admitted_scale(now)
        if admitted is None:
            return False
        got = admitted / self.scale  # of the rate we pace at now (a cut one, after earlier 429s)
        isolated = now - previous > ISOLATED_429_S
        return (self.scale >= 1.0 and got >= AT_CEILING_SHARE) or (isolated and got >= ISOLATED_SHARE)

    def _admitted_scale(self, now: float) -> float | None:
        """Share of the ceiling the service admitted over the last seconds (the busier bucket)."""
        window = [(t, k) for t, k in self._admitted if now - t <= self._admitted_window()]
        if len(window) < 3:
            return None
        # From the first answer to this 429 (the next request's turn) a steady stream has one gap
        # per answer: count / span is its rate.
        span = max(WINDOW_S, now - window[0][0])
        shares = []
        if self.rpm_ceiling:
            shares.append(len(window) / span * 60 / self.rpm_ceiling)
        if self.tpm_ceiling:
            shares.append(sum(k for _, k in window) * self.ratio / span * 60 / self.tpm_ceiling)
        return max(shares) if shares else None

    def _admitted_window(self) -> float:
        """How far back to measure what the service admitted: a few seconds, and at a low rate
        (a whisper quota of 3 RPM) long enough to hold a few requests."""
        if not self.rpm_ceiling:
            return ADMITTED_WINDOW_S
        return max(ADMITTED_WINDOW_S, ADMITTED_REQUESTS * 60 / self.rpm_ceiling)

    def _learn_ceiling(self, now: float) -> None:
        """No limits in the spec: pace just under what we achieved over the last seconds. Less than
        a window of history measures nothing (a 429 in a run's first milliseconds): hold only."""
        window = [(t, k) for t, k in self._admitted if now - t <= 5.0]
        if len(window) >= 2 and now - window[0][0] >= WINDOW_S:
            self.rpm_ceiling = len(window) / (now - window[0][0]) * 60 * ADMITTED_SHARE
        elif self.rpm_ceiling:
            self.rpm_ceiling *= CUT

    def _grow_learned_ceiling(self, now: float, remaining_requests: int | None,
                              remaining_tokens: int | None) -> None:
        """A ceiling learned from one 429 may come from a bad moment (the first milliseconds of a
        run, a spurious 429): while answers show room, raise it, fast when the room is large."""
        if now - self._last_cut < 2.0 or now - self._last_change < 1.0 or not self.rpm_ceiling:
            return
        if self._exhausted(remaining_requests, remaining_tokens):
            return
        if remaining_requests is None and remaining_tokens is None:
            factor = LEARNED_GROWTH_BLIND
        elif self._much_room(remaining_requests, remaining_tokens):
            factor = LEARNED_GROWTH_FAST
        else:
            factor = 1 + PROBE_STEP
        self.rpm_ceiling *= factor
        self._last_change = now
        self._rebuild()

    def note_admitted(self, tokens: int) -> None:
        """The service took this request past its quota check (any answer but a 429, even a 5xx):
        what it admitted, not what succeeded, measures the quota."""
        self._admitted.append((self._clock(), tokens))

    def on_success(self, tokens: int, remaining_requests: int | None, remaining_tokens: int | None,
                   limit_requests: int | None = None, limit_tokens: int | None = None, *,
                   slot: Slot | None = None) -> None:
        """Learn the service's token count from its headers, and raise the rate toward the ceiling
        while answers come back clean with headroom.

        Up to what the service admitted when the 429 came (`_learned`) the steps are quick;
        above it we probe in steps as large as the room the service reports (remaining / limit
        of its window), so a spec that overstates the quota settles just under the real one.
        """
        now = self._clock()
        self.note_admitted(tokens)
        if slot is not None and remaining_tokens is not None and limit_tokens:
            self._learn_ratio(now, slot, remaining_tokens, limit_tokens)
        if self.scale >= 1.0:
            if not self._ceiling_from_spec:
                self._grow_learned_ceiling(now, remaining_requests, remaining_tokens)
            return
        if now - self._last_cut < 2.0 or now - self._last_change < 1.0:
            return
        # Up to what the service admitted before, a full window (remaining 0) is expected: pacing
        # just under a quota fills it. Above that, probe in small steps and only while it shows room.
        exhausted = self._exhausted(remaining_requests, remaining_tokens)
        if self._learned is not None and self.scale < self._learned * HEADROOM:
            target = min(self._learned * HEADROOM, self.scale + RAISE_STEP)
        elif exhausted:
            return
        elif (room := _room_share(remaining_requests, remaining_tokens, limit_requests, limit_tokens,
                                  round(tokens * self.ratio))) is not None:
            target = self.scale * (1 + min(MAX_PROBE_STEP, max(PROBE_STEP, PROBE_GAIN * room)))
        elif self._learned is None or self._much_room(remaining_requests, remaining_tokens):
            target = self.scale + RAISE_STEP
        else:
            target = self.scale * (1 + PROBE_STEP)
        self.scale = min(1.0, target)
        self._last_change = now
        self._rebuild()

    def _learn_ratio(self, now: float, slot: Slot, remaining_tokens: int, limit_tokens: int) -> None:
        """One answer's token headers into the ratio; a ratio that moved re-paces everyone."""
        window_s = self._service_window(limit_tokens)
        if window_s is None:
            return
        if self._count.observe(now, slot, remaining_tokens, limit_tokens, window_s) and self._built:
            self._rebuild()

    def _service_window(self, limit_tokens: int) -> float | None:
        """The service's window: the one of Azure's whose share of the spec's TPM is the limit the service
        reports. None when none is: the spec's quota is not the service's (a ratio learned over a window
        guessed from it would take in the spec's error too, and a cut for it would count twice; a spec
        set low on purpose would be overrun), and the 429s adapt the rate as before."""
        if not self.tpm_ceiling:
            return None
        tpm = self.tpm_ceiling / HEADROOM
        return next((w for w in SERVICE_WINDOWS_S if abs(math.floor(tpm * w / 60 + 1e-9) - limit_tokens) <= 1), None)

    def _exhausted(self, remaining_requests: int | None, remaining_tokens: int | None) -> bool:
        return remaining_tokens == 0 or (remaining_requests == 0 and self._window_room() > 2)

    def _window_room(self) -> int:
        """Requests the spec's quota lets one service window hold. With one or two, every answer
        reads remaining 0 at the quota or well under it alike, so 0 tells nothing."""
        return request_window(self.rpm_ceiling / HEADROOM)[1] if self.rpm_ceiling else 0

    def _much_room(self, remaining_requests: int | None, remaining_tokens: int | None) -> bool:
        """The service's window has a quarter of the spec's allowance or more to spare: the 429 that
        set `_learned` came from a bad moment (or a spurious 429), not a quota we are close to."""
        checks = []
        if self.rpm_ceiling and remaining_requests is not None:
            checks.append(remaining_requests >= MUCH_ROOM * self._window_room())
        if self.tpm_ceiling and remaining_tokens is not None:
            checks.append(remaining_tokens >= MUCH_ROOM * self._token_allowance())
        return bool(checks) and all(checks)

    def hold_remaining(self) -> float:
        return max(0.0, self._not_before - self._clock())

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
