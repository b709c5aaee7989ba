"""One quota for every worker of a run: each deployment's Pacer lives in one Ray actor (QuotaKeeper),
and the workers' SharedPacers ask it for each request's sending right.

Azure counts a deployment's requests and tokens over 1-10 s windows whoever sends them, so N workers
pacing on their own would send N times the quota. The keeper holds the buckets, the adaptive rate, the
shared 429 hold and the learned token ratio of one deployment; a worker's request leaves when the keeper
grants it (one round trip, about a millisecond, against windows of a second), and what the answer says
(its rate-limit headers, a 429) goes back to the keeper, so a 429 seen by one worker holds them all.

The keeper is plain asyncio (tested without Ray); cluster/executor.py runs it as an actor. The worker's
side keeps the keeper's last word on its rates and hold, which the router reads between grants.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.client.accounting import Slot
from pipeline.client.limiter import GIVE_UP_CHECK_S, Pacer, Rerouted

KEPT_SLOTS = 65_536  # grants whose answer has not come back yet; older ones (a worker died) are let go


@dataclass(frozen=True)
class PacerView:
    """What the router asks of a pacer between requests, as the keeper last saw it."""

    request_rate: float | None
    token_rate: float | None
    max_request_tokens: int | None
    hold_s: float
    state: str


@dataclass(frozen=True)
class Grant:
    """One request's right to leave now; `key` names its slot in the keeper when the answer comes back."""

    key: int
    generation: int
    tokens: int
    view: PacerView


@dataclass(slots=True, eq=False)
class SharedSlot(Slot):
    key: int = 0


class QuotaKeeper:
    """One deployment's pacer for all the workers of a run (the body of a Ray actor)."""

    def __init__(self, rpm: float | None, tpm: float | None, max_hold_s: float) -> None:
        self.pacer = Pacer(rpm, tpm, max_hold_s=max_hold_s)
        self._slots: collections.OrderedDict[int, Slot] = collections.OrderedDict()
        self._keys = itertools.count(1)

    async def acquire(self, tokens: int) -> Grant:
        slot = await self.pacer.acquire_slot(tokens)
        key = next(self._keys)
        self._slots[key] = slot
        if len(self._slots) > KEPT_SLOTS:
            self._slots.popitem(last=False)
        return Grant(key, slot.generation, slot.tokens, self.view())

    def on_success(self, key: int, tokens: int, remaining_requests: int | None, remaining_tokens: int | None,
                   limit_requests: int | None, limit_tokens: int | None) -> None:
        self.pacer.on_success(tokens, remaining_requests, remaining_tokens, limit_requests, limit_tokens,
                              slot=self._slots.pop(key, None))

    def on_rate_limited(self, key: int, retry_after: float | None, repeat: bool, remaining_requests: int | None,
                        remaining_tokens: int | None) -> None:
        self.pacer.on_rate_limited(retry_after, slot=self._slots.pop(key, None), repeat=repeat,
                                   remaining_requests=remaining_requests, remaining_tokens=remaining_tokens)

    def note_admitted(self, tokens: int) -> None:
        self.pacer.note_admitted(tokens)

    def view(self) -> PacerView:
        pacer = self.pacer
        return PacerView(pacer.request_rate(), pacer.token_rate(), pacer.max_request_tokens(),
                         pacer.hold_remaining(), pacer.state())

    def report(self) -> dict[str, Any]:
        """For the driver's progress line and the benchmarks: the state and what 429s cost everyone."""
        pacer = self.pacer
        return {"state": pacer.state(), "scale": pacer.scale, "ratio": pacer.ratio, "holds": pacer.holds,
                "held_s": round(pacer.held_s, 3), "waited_s": {k: round(v, 3) for k, v in pacer.waited.items()}}


class SharedPacer:
    """A worker's side of a QuotaKeeper actor: the Pacing protocol (client/limiter.py) over Ray calls."""

    def __init__(self, keeper: Any, view: PacerView, clock: Callable[[], float] = time.monotonic) -> None:
        self._keeper = keeper  # a Ray actor handle
        self._clock = clock
        self._seen(view)

    def _seen(self, view: PacerView) -> None:
        self._view, self._view_at = view, self._clock()

    async def acquire_slot(self, tokens: int, give_up: Callable[[], bool] | None = None) -> Slot:
        """Wait for the keeper's grant; with `give_up`, ask it every GIVE_UP_CHECK_S whether another
        deployment would take the request sooner (Rerouted: the grant, if it comes, goes unused)."""
        ref = self._keeper.acquire.remote(tokens)
        waiting = asyncio.wrap_future(ref.future())
        while give_up is not None:
            done, _ = await asyncio.wait({waiting}, timeout=GIVE_UP_CHECK_S)
            if done:
                break
            if give_up():
                waiting.cancel()
                raise Rerouted
        grant: Grant = await waiting
        self._seen(grant.view)
        return SharedSlot(grant.generation, self._clock(), grant.tokens, key=grant.key)

    def on_rate_limited(self, retry_after: float | None, generation: int | None = None, *, slot: Slot | None = None,
                        repeat: bool = False, remaining_requests: int | None = None,
                        remaining_tokens: int | None = None) -> None:
        key = slot.key if isinstance(slot, SharedSlot) else 0
        self._keeper.on_rate_limited.remote(key, retry_after, repeat, remaining_requests, remaining_tokens)
        if retry_after:  # this worker holds at once; the keeper's grants hold the others
            self._seen(dataclasses.replace(self._view, hold_s=max(self.hold_remaining(), retry_after)))

    def note_admitted(self, tokens: int) -> None:
        self._keeper.note_admitted.remote(tokens)

    def on_success(self, tokens: int, remaining_requests: int | None, remaining_tokens: int | None,
                   limit_requests: int | None = None, limit_tokens: int | None = None, *,
                   slot: Slot | None = None) -> None:
        key = slot.key if isinstance(slot, SharedSlot) else 0
        self._keeper.on_success.remote(key, tokens, remaining_requests, remaining_tokens, limit_requests,
                                       limit_tokens)

    def request_rate(self) -> float | None:
        return self._view.request_rate

    def token_rate(self) -> float | None:
        return self._view.token_rate

    def max_request_tokens(self) -> int | None:
        return self._view.max_request_tokens

    def hold_remaining(self) -> float:
        return max(0.0, self._view.hold_s - (self._clock() - self._view_at))

    def state(self) -> str:
        return self._view.state
