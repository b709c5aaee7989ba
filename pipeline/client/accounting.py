"""The service's own token count, learned from its x-ratelimit-*-tokens headers (pure: no clock, no I/O).

Azure charges each request against TPM with its own estimate at arrival; ours errs high on purpose,
and another server may count more than we do. Pacing by our count then leaves quota unused (a
server counting 0.8x ours ran at 0.76 of its quota) or earns 429s. So each pacer learns the ratio
between the service's count and ours and paces by the service's.

The model: a service evaluating TPM over a window of w seconds (Azure: 1 or 10 s) holds the charges
of the requests that arrived in the last w seconds, so when request i arrives

    limit - remaining_i = ratio * (our estimates of the requests sent in (s_i - w, s_i])

where s_i is when we sent i. That is what one answer's headers give: the window's refill (old
charges leaving it) is in the model, not a difference to guess. The sample is matched to the send
time of *that* request, not to when its answer came back: under concurrency answers return late and
out of order, and the header reports the window at its arrival. A request refused with a 429 was
charged nothing and is left out of our side. Requests of other clients sharing the deployment show
up as a higher ratio, which is right to pace by too.

One sample is noisy (a request at the window's edge is in or out of it), so the ratio is the ratio of
sums over the samples of the last RATIO_SPAN_S, and it moves only past a small dead band: a rate
change makes every waiting slot stale. The window length w comes from the pacer (the service's
window whose share of the spec's TPM is the limit it reports). A window outside
MIN_WINDOW_S..MAX_WINDOW_S is not one this model holds for (OpenAI's per-minute bucket): nothing is
learned there.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass

RATIO_SPAN_S = 2.0  # one estimate from the samples of the last seconds
MIN_SAMPLES = 5
DEAD_BAND = 0.01  # a smaller change is noise, not worth making every waiting slot stale
MIN_RATIO, MAX_RATIO = 0.25, 4.0
MIN_WINDOW_S, MAX_WINDOW_S = 0.25, 15.0
KEEP_S = MAX_WINDOW_S + 5.0  # sends older than this leave the log (no sample window reaches them)
PRUNE_AT = 4096  # entries dropped at once: pruning costs nothing per request


@dataclass(slots=True, eq=False)
class Slot:
    """One request the pacer let out: when, at which rate generation, and our estimate of its tokens."""

    generation: int
    sent_at: float
    tokens: int
    refused: bool = False


class SentLog:
    """Our estimates of the requests sent, as running totals by send time: the sum over any window
    in O(log n) (a window of a big quota holds thousands of requests)."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._totals: list[int] = []  # the running total, this send included
        self._base = 0  # the running total before the first entry kept
        self._refused: collections.deque[Slot] = collections.deque()

    def add(self, slot: Slot) -> None:
        """A send, in send order (the pacer's clock never goes back)."""
        self._times.append(slot.sent_at)
        self._totals.append((self._totals[-1] if self._totals else self._base) + slot.tokens)

    def refuse(self, slot: Slot) -> None:
        if not slot.refused:
            slot.refused = True
            self._refused.append(slot)

    def between(self, start: float, end: float) -> int:
        """Our estimates of the requests sent in (start, end] that the service did not refuse."""
        sent = self._total_at(end) - self._total_at(start)
        refused = sum(s.tokens for s in self._refused if start < s.sent_at <= end)
        return sent - refused

    def _total_at(self, when: float) -> int:
        index = bisect.bisect_right(self._times, when)
        return self._totals[index - 1] if index else self._base

    def prune(self, before: float) -> None:
        while self._refused and self._refused[0].sent_at <= before:
            self._refused.popleft()
        index = bisect.bisect_right(self._times, before)
        if index >= PRUNE_AT:
            self._base = self._totals[index - 1]
            del self._times[:index], self._totals[:index]


class ServiceTokenCount:
    """The ratio of the service's token count to our estimates, for one deployment."""

    def __init__(self) -> None:
        self.ratio = 1.0
        self.sent = SentLog()
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()  # (at, theirs, ours)
        self._theirs = 0
        self._ours = 0

    def observe(self, now: float, slot: Slot, remaining: int, limit: int, window_s: float) -> bool:
        """One answer's x-ratelimit-remaining-tokens and -limit-tokens for the request of `slot`.
        True when the ratio moved past the dead band (pace by the new one)."""
        self.sent.prune(now - KEEP_S)
        if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S or not 0 <= remaining <= limit:
            return False
        if slot.sent_at - window_s <= now - KEEP_S:
            return False  # answered so late that the sends of its window have left the log
        ours = self.sent.between(slot.sent_at - window_s, slot.sent_at)
        if ours <= 0:
            return False
        self._add_sample(now, limit - remaining, ours)
        if len(self._samples) < MIN_SAMPLES or self._ours <= 0:
            return False
        estimate = min(MAX_RATIO, max(MIN_RATIO, self._theirs / self._ours))
        if abs(estimate / self.ratio - 1) <= DEAD_BAND:
            return False
        self.ratio = estimate
        return True

    def _add_sample(self, now: float, theirs: int, ours: int) -> None:
        self._samples.append((now, theirs, ours))
        self._theirs += theirs
        self._ours += ours
        while self._samples[0][0] < now - RATIO_SPAN_S:
            _, old_theirs, old_ours = self._samples.popleft()
            self._theirs -= old_theirs
            self._ours -= old_ours
