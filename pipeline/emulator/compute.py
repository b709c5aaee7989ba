"""Compute-bound mode: a self-hosted server with no quota but one worker (`compute_ms_per_input`).

Requests are computed one at a time in arrival order, each for `compute_ms_per_input` per unit of
work: an embeddings input; for chat, completions and responses, a token the answer may take (max_tokens, or
the emulator's default, times n); any other request is one unit. As on a real inference server, a
request whose client went away (a timeout) is computed all the same: the worker cannot tell, and
whatever comes after it waits. The worker is modelled by the time it is next free, so its queue is
exact and costs nothing; the handler sleeps until its request is done.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pipeline.emulator.charges import answer_budget, input_items

if TYPE_CHECKING:  # the state that holds the queue is imported by the exchange
    from pipeline.emulator.exchange import Exchange


class ComputeQueue:
    """One worker's queue: what it has computed, for whom, and how busy it was."""

    def __init__(self) -> None:
        self.free_at = 0.0  # when the worker finishes everything it was given
        self.computed = 0  # requests computed (or being computed), answered or not
        self.delivered = 0  # ... whose answer was sent
        self.abandoned = 0  # ... whose client went away before it was done
        self.busy_s = 0.0

    def book(self, now: float, seconds: float) -> float:
        """Queue `seconds` of work arriving at `now`; when it will be done."""
        self.free_at = max(now, self.free_at) + seconds
        self.computed += 1
        self.busy_s += seconds
        return self.free_at

    def snapshot(self) -> dict[str, Any]:
        return {"computed": self.computed, "delivered": self.delivered, "abandoned": self.abandoned,
                "busy_s": round(self.busy_s, 6)}


def work_units(op: str, body: dict[str, Any]) -> int:
    """How much a request costs the worker, in units of `compute_ms_per_input`."""
    if op == "embeddings":
        return max(1, len(input_items(body.get("input"))))
    if op in ("chat/completions", "completions", "responses"):
        n = body.get("n")
        return max(1, answer_budget(op, body)) * (n if isinstance(n, int) and n > 0 else 1)
    return 1


async def compute(x: Exchange) -> None:
    """Wait for the worker to compute this request (nothing when the mode is off)."""
    ms = x.config.compute_ms_per_input
    if ms <= 0:
        return
    queue, clock = x.state.compute, x.state.clock
    done_at = queue.book(clock(), ms * work_units(x.op.path, x.body) / 1000)
    try:
        await asyncio.sleep(max(0.0, done_at - clock()))
    except asyncio.CancelledError:
        queue.abandoned += 1  # the client went away; the worker's time stays booked
        raise
    queue.delivered += 1
