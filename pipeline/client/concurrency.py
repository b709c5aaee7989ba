"""What one deployment's server can take: how much work in flight at once, and how many inputs per request.

A quota-paced service (Azure) is held back by the pacer; its latency does not depend on how much we
have in flight. A self-hosted server has no quota but finite compute: past its capacity each extra
request in flight only waits in its queue, a request that times out is still computed after we gave
up on it, and a retry sent at once queues behind that abandoned work and times out in turn. Against
a CPU-bound embeddings server (one inference at a time) the default limits (concurrency 16, batch
256, timeout 60 s) stalled that way. So each deployment adapts two numbers, bounded by the spec:
`concurrency` and `batch_size` stay the ceilings.

The concurrency limit is AIMD on queueing delay (the signal of TCP's LEDBAT, the shape of Netflix's
concurrency-limits AIMD limit). It counts inputs in flight, not requests, as TCP's window counts
bytes rather than packets: one request of 256 inputs loads a server as much as eight of 32, and the
batch cap below changes request sizes under it. For chat and other one-row requests it is a count of
requests. An answer's queueing delay is its latency less the time the server needs for its inputs
alone (ServiceTime). Only absolute delays count, measured against the timeout, so answers that vary
for other reasons (a long completion, a slow network) are not taken for congestion.

- Start at START_LIMIT requests' worth of inputs; each answer delayed by less than half the target (a
  quarter of the timeout) adds its inputs: the limit doubles every round trip while the server keeps
  up (slow start). Growth needs the limit in use: half of it busy when the answered request was sent.
- The first answer delayed beyond the target ends slow start with a cut by a quarter. After that an
  answer adds one request's worth per round trip (inputs^2 / limit), and a cut needs a round of answers
  delayed beyond the target in a row (inputs adding up to the limit): one slow answer is noise.
- Cuts are at most one per round: answers to requests sent before a cut say nothing about the limit
  after it. Except a warning: an answer later than half the timeout cuts whenever it was sent (at most
  once per target delay), since the server got slower and those in flight are about to time out.
- A timeout halves the limit, and the attempt's inputs stay counted as busy for the server's time for
  them after the timeout (it is still computing them, we just stopped listening): the retry waits for
  the server instead of piling onto the work we abandoned.
- Bounds: a request alone always goes; the ceiling is `concurrency` requests of the largest size sent.

The batch cap keeps one request's compute under BATCH_SHARE of the timeout: it starts at START_BATCH
inputs (a full batch may take longer than the timeout on a slow server, and then every attempt of it
times out), grows at most twofold per answer toward what the server's time per input allows, shrinks
to it at once when that time rises, and after a timeout is halved and grows back by an eighth per answer.
The runner cuts each batch into even pieces under the cap before its first attempt (a retry resends the
same request).

Against a quota-paced deployment latency stays flat: the limit reaches `concurrency` full requests
within a few round trips and the cap `batch_size` within a few answers. 429s, 5xx and broken
connections are not latency signals: their slots are released without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pipeline.errors import APITimeoutError

START_LIMIT = 4  # requests in flight before any answer: a few, so a slow server is not flooded at once
START_BATCH = 32  # inputs per request before any answer
QUEUE_SHARE = 0.25  # queueing delay allowed: a quarter of the timeout
BATCH_SHARE = 0.125  # one request's own compute: an eighth of the timeout
LATENCY_CUT = 0.75
TIMEOUT_CUT = 0.5
WARNING_SHARE = 0.5  # an answer this late (a share of the timeout) warns of timeouts: cut at once
SERIAL_WEIGHT = 0.3  # of the newest answer in the running mean of the one-at-a-time bound
FAST_GROWTH = 2.0  # batch cap, per answer, until the first timeout
SLOW_GROWTH = 1.125  # ... and after it


@dataclass(frozen=True)
class Permit:
    """One request's slot: its inputs, the limit's cut count and the inputs busy (its own included)
    when it was taken."""

    inputs: int
    epoch: int
    busy: int


class ServiceTime:
    """The server's compute time per input, the larger of two lower bounds.

    - No load: the smallest latency per input any answer showed. A minimum, never forgotten:
      answers queued behind others read higher and leave it alone, so it cannot drift up with the
      queue it is used to measure.
    - One at a time: an answer's latency spread over the inputs busy when it was sent (its own and
      those ahead of it), as a server computing them one after another would take; a running mean.
      This one follows a server that got slower. Against a server that computes many requests at
      once it reads far below the first and counts for nothing.
    A timeout gives the second bound too, its latency being at least the timeout.
    """

    def __init__(self) -> None:
        self.no_load: float | None = None
        self.serial = 0.0

    @property
    def per_input(self) -> float | None:
        return None if self.no_load is None else max(self.no_load, self.serial)

    def note_answer(self, latency_s: float, inputs: int, busy: int) -> None:
        seen = latency_s / max(1, inputs)
        self.no_load = seen if self.no_load is None else min(self.no_load, seen)
        self._note_serial(latency_s / max(1, busy))

    def note_timeout(self, timeout_s: float, busy: int) -> None:
        self._note_serial(timeout_s / max(1, busy))
        self.no_load = self.no_load if self.no_load is not None else self.serial

    def _note_serial(self, seen: float) -> None:
        self.serial = seen if not self.serial else self.serial + SERIAL_WEIGHT * (seen - self.serial)

    def of(self, inputs: int) -> float:
        """Seconds the server needs for `inputs` with nothing ahead of them (0 before any answer)."""
        return (self.per_input or 0.0) * inputs


class ConcurrencyLimit:
    """Inputs in flight at one deployment: AIMD on queueing delay (see the module doc)."""

    def __init__(self, concurrency: int, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.concurrency = max(1, concurrency)
        self.limit: float | None = None  # set by the first request: START_LIMIT of its size
        self.largest = 1  # inputs of the largest request so far: the ceiling is `concurrency` of them
        self.target_s = QUEUE_SHARE * timeout_s
        self.warning_s = WARNING_SHARE * timeout_s
        self.slow_start = True
        self.in_flight = 0  # inputs
        self._clock = clock
        self._epoch = 0  # cuts so far
        self._cut_at = -math.inf
        self._delayed_in_row = 0  # inputs of this epoch's answers in a row delayed beyond the target
        self._debts: list[tuple[float, int]] = []  # heap: (until when, inputs) of abandoned attempts
        self._queue: deque[object] = deque()  # tickets of waiting acquirers, first come first served
        self._changed = asyncio.Event()

    # ---- room

    def ceiling(self) -> int:
        return self.concurrency * self.largest

    def busy(self) -> int:
        """Inputs taken: in flight, and abandoned that the server is still computing."""
        now = self._clock()
        while self._debts and self._debts[0][0] <= now:
            heapq.heappop(self._debts)
        return self.in_flight + sum(inputs for _, inputs in self._debts)

    def has_room(self, inputs: int) -> bool:
        """A request of `inputs` fits beside the busy ones, or would be alone at the server."""
        busy = self.busy()
        return busy == 0 or busy + inputs <= self._limit_for(inputs)

    def _limit_for(self, inputs: int) -> float:
        if self.limit is None:
            self.limit = float(min(self.concurrency, START_LIMIT) * max(1, inputs))
        return self.limit

    # ---- taking a slot

    async def acquire(self, inputs: int) -> Permit:
        """Wait until a request of `inputs` has room (first come, first served) and take it."""
        if not self._queue and self.has_room(inputs):
            return self._take(inputs)
        ticket = object()
        self._queue.append(ticket)
        try:
            while not (self._queue[0] is ticket and self.has_room(inputs)):
                await self._wait_for_change()
        finally:
            self._queue.remove(ticket)
            self._notify()  # the next in line may take what room is left (or what this one leaves)
        return self._take(inputs)

    def _take(self, inputs: int) -> Permit:
        self.largest = max(self.largest, inputs)
        self.in_flight += inputs
        return Permit(inputs, self._epoch, self.busy())

    async def _wait_for_change(self) -> None:
        """Until a slot is released, the limit changes, or the next abandoned attempt is done."""
        changed = self._changed
        timeout = None
        if self._debts:
            timeout = max(0.0, self._debts[0][0] - self._clock()) + 0.001
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- outcomes (each releases the permit's slot)

    def release(self, permit: Permit) -> None:
        """An outcome that says nothing about the server's load (429, 5xx, a broken connection)."""
        self.in_flight -= permit.inputs
        self._notify()

    def on_answer(self, permit: Permit, latency_s: float, delay_s: float) -> None:
        """An answer after `latency_s`, `delay_s` more than the server's time for its inputs alone."""
        self.in_flight -= permit.inputs
        if delay_s <= self.target_s / 2:
            self._grow(permit)
        if self._congested(permit, delay_s) or self._warned(latency_s):
            self._cut(LATENCY_CUT)
        self._notify()

    def _congested(self, permit: Permit, delay_s: float) -> bool:
        """Answers sent since the last cut, delayed beyond the target in a row: the first one in slow
        start, a round of them (inputs adding up to the limit) after it."""
        if permit.epoch != self._epoch:
            return False
        self._delayed_in_row = self._delayed_in_row + permit.inputs if delay_s > self.target_s else 0
        return self._delayed_in_row >= (1 if self.slow_start else self._limit_for(permit.inputs))

    def _warned(self, latency_s: float) -> bool:
        """An answer late enough to warn of timeouts (the server got slower): cut now, whenever it was
        sent, at most once per target delay. Waiting a round for answers sent after the last cut would
        let those in flight time out first."""
        return latency_s > self.warning_s and self._clock() - self._cut_at >= self.target_s

    def on_timeout(self, permit: Permit, busy_s: float) -> None:
        """An attempt abandoned at the timeout: its inputs stay busy `busy_s` more (the server's work on them)."""
        self.in_flight -= permit.inputs
        if busy_s > 0:
            heapq.heappush(self._debts, (self._clock() + busy_s, permit.inputs))
        if permit.epoch == self._epoch:
            self._cut(TIMEOUT_CUT)
        self._notify()

    def _grow(self, permit: Permit) -> None:
        limit = self._limit_for(permit.inputs)
        if permit.busy < limit / 2:
            return  # the limit was not what held requests back: latency says nothing about more
        step = permit.inputs if self.slow_start else min(permit.inputs, permit.inputs ** 2 / limit)
        self.limit = min(float(self.ceiling()), limit + step)

    def _cut(self, factor: float) -> None:
        self.limit = max(1.0, (self.limit or 1.0) * factor)
        self.slow_start = False
        self._epoch += 1
        self._cut_at = self._clock()
        self._delayed_in_row = 0


class BatchCap:
    """Inputs one request may carry: as many as the server computes in BATCH_SHARE of the timeout."""

    def __init__(self, ceiling: int, timeout_s: float) -> None:
        self.ceiling = max(1, ceiling)
        self.size = min(self.ceiling, START_BATCH)
        self.budget_s = BATCH_SHARE * timeout_s
        self._growth = FAST_GROWTH

    def on_answer(self, per_input_s: float | None) -> None:
        fits = self.budget_s / per_input_s if per_input_s else math.inf
        grown = max(self.size + 1, math.floor(self.size * self._growth))
        self.size = int(max(1, min(self.ceiling, fits, grown)))

    def on_timeout(self, inputs: int) -> None:
        self.size = max(1, min(self.size, inputs // 2))
        self._growth = SLOW_GROWTH


class Slot:
    """A request's hold on its deployment's capacity; `answered` records its latency."""

    def __init__(self) -> None:
        self.latency_s: float | None = None

    def answered(self, latency_s: float) -> None:
        self.latency_s = latency_s


class Capacity:
    """One deployment's concurrency limit and batch cap, learned from the latency of its answers."""

    def __init__(self, concurrency: int, batch_size: int, timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.service = ServiceTime()
        self.limit = ConcurrencyLimit(concurrency, timeout_s, clock)
        self.batch = BatchCap(batch_size, timeout_s)

    @contextlib.asynccontextmanager
    async def slot(self, inputs: int) -> AsyncIterator[Slot]:
        """Hold room for one attempt carrying `inputs`; its outcome adapts the limit and the cap."""
        permit = await self.limit.acquire(inputs)
        slot = Slot()
        try:
            yield slot
        except APITimeoutError:
            self.timed_out(permit)
            raise
        except BaseException:
            self.limit.release(permit)
            raise
        if slot.latency_s is None:
            self.limit.release(permit)
        else:
            self.answered(permit, slot.latency_s)

    def answered(self, permit: Permit, latency_s: float) -> None:
        self.service.note_answer(latency_s, permit.inputs, permit.busy)
        self.limit.on_answer(permit, latency_s, max(0.0, latency_s - self.service.of(permit.inputs)))
        self.batch.on_answer(self.service.per_input)

    def timed_out(self, permit: Permit) -> None:
        self.service.note_timeout(self.timeout_s, permit.busy)
        self.limit.on_timeout(permit, min(self.timeout_s, self.service.of(permit.inputs)))
        self.batch.on_timeout(permit.inputs)

    def limiting(self) -> bool:
        """Whether the server's capacity holds the job below the spec's concurrency or batch_size."""
        limit, batching = self.limit.limit, self.limit.largest > 1  # one-row requests have no batch to cut
        held = limit is not None and limit < self.limit.ceiling()
        return held or (batching and self.batch.size < self.batch.ceiling)

    def state(self) -> str:
        """A few words for the progress line."""
        limit = self.limit.limit or 0.0
        return f"server's capacity: {limit:.0f} inputs in flight, {self.batch.size} per request"


def piece_size(size: int, cap: int) -> int:
    """Inputs in the first piece of a batch of `size` cut to at most `cap` per request: the batch is
    cut in even pieces (a batch of 256 under a cap of 250 is two of 128, not 250 and 6)."""
    pieces = math.ceil(size / max(1, cap))
    return math.ceil(size / pieces)
