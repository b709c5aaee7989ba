"""The adaptive concurrency limit and batch cap, driven by an injected clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.client.concurrency import (
    BATCH_SHARE,
    START_BATCH,
    START_LIMIT,
    BatchCap,
    Capacity,
    ConcurrencyLimit,
    Permit,
    ServiceTime,
    piece_size,
)
from pipeline.errors import APITimeoutError, InternalServerError

TIMEOUT = 60.0  # target queueing delay 15 s, warning at 30 s, a request's own compute 7.5 s


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def take(limit: ConcurrencyLimit, inputs: int) -> Permit:
    assert limit.has_room(inputs)
    return limit._take(inputs)


def fill(limit: ConcurrencyLimit, inputs: int) -> list[Permit]:
    """Take slots of `inputs` while the limit has room."""
    permits = []
    while limit.has_room(inputs) and len(permits) < 1000:
        permits.append(take(limit, inputs))
    return permits


def test_starts_with_a_few_requests_of_the_first_size() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    assert len(fill(limit, 32)) == START_LIMIT
    assert limit.limit == START_LIMIT * 32


def test_flat_latency_grows_to_the_spec_concurrency_and_stays() -> None:
    """A quota-paced service: latency the same whatever is in flight. The limit doubles per round
    (slow start) to `concurrency` requests and never comes down."""
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    rounds = 0
    while len(permits := fill(limit, 1)) < 16:
        for permit in permits:
            limit.on_answer(permit, 0.5, 0.0)
        rounds += 1
    assert rounds <= 3 and limit.limit == 16
    for _ in range(50):
        for permit in fill(limit, 1):
            limit.on_answer(permit, 0.5, 0.0)
    assert limit.limit == 16 and limit.slow_start


def test_growth_needs_the_limit_in_use() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    limit.on_answer(take(limit, 1), 0.1, 0.0)  # one request of four allowed: the limit held nothing back
    assert limit.limit == START_LIMIT


def test_a_delay_beyond_the_target_in_slow_start_cuts_a_quarter() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    permits = fill(limit, 10)
    limit.on_answer(permits[0], 20.0, 16.0)  # 16 s queued: beyond a quarter of the timeout
    assert limit.limit == pytest.approx(0.75 * START_LIMIT * 10) and not limit.slow_start


def test_delays_between_half_and_whole_target_hold_the_limit() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    for permit in fill(limit, 10):
        limit.on_answer(permit, 12.0, 10.0)
    assert limit.limit == START_LIMIT * 10 and limit.slow_start


def test_one_slow_answer_among_quick_ones_is_noise_after_slow_start() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    limit._limit_for(10)
    limit._cut(1.0)  # out of slow start, limit unchanged (4 requests of 10)
    for delay in (20.0, 1.0, 20.0, 20.0, 1.0, 20.0):
        limit.on_answer(take(limit, 10), delay, delay)
    assert limit.limit == START_LIMIT * 10  # alone at the server each time: no growth either
    for _ in range(4):  # delayed answers in a row, until their inputs add up to the limit
        limit.on_answer(take(limit, 10), 20.0, 20.0)
    assert limit.limit == pytest.approx(0.75 * START_LIMIT * 10)


def test_answers_sent_before_a_cut_do_not_cut_again() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    permits = fill(limit, 10)
    for permit in permits:  # a whole round in flight when the first delayed answer cut the limit
        limit.on_answer(permit, 20.0, 16.0)
    assert limit.limit == pytest.approx(0.75 * START_LIMIT * 10)


def test_an_answer_late_enough_to_warn_of_timeouts_cuts_whenever_it_was_sent() -> None:
    clock = Clock()
    limit = ConcurrencyLimit(16, TIMEOUT, clock)
    early = fill(limit, 10)
    limit.on_answer(early[0], 20.0, 16.0)  # cut; the other three were sent before it
    cut_once = limit.limit
    limit.on_answer(early[1], 25.0, 21.0)  # late, not yet a warning: a round must show it
    assert limit.limit == cut_once
    clock.now += 20.0  # more than a target delay since the cut
    limit.on_answer(early[2], 35.0, 31.0)  # past half the timeout: the server got slower
    assert limit.limit == pytest.approx(0.75 * cut_once)
    limit.on_answer(early[3], 36.0, 32.0)  # ... but one cut per target delay
    assert limit.limit == pytest.approx(0.75 * cut_once)


def test_a_timeout_halves_the_limit_and_keeps_the_abandoned_work_busy() -> None:
    """The server goes on computing what we gave up on: its inputs stay counted until it is done,
    so the retry does not queue behind it."""
    clock = Clock()
    limit = ConcurrencyLimit(16, TIMEOUT, clock)
    permits = fill(limit, 100)
    for permit in permits[1:]:
        limit.release(permit)
    clock.now = 60.0
    limit.on_timeout(permits[0], busy_s=5.0)
    assert limit.limit == pytest.approx(0.5 * START_LIMIT * 100)
    assert limit.in_flight == 0 and limit.busy() == 100
    assert limit.has_room(100)  # 100 busy + 100 fits in 200
    take(limit, 100)
    assert not limit.has_room(100)
    clock.now = 65.0  # the server is done with the abandoned request
    assert limit.busy() == 100 and limit.has_room(100)


def test_a_lone_request_always_goes_but_not_beside_abandoned_work() -> None:
    clock = Clock()
    limit = ConcurrencyLimit(16, TIMEOUT, clock)
    permit = take(limit, 8)
    limit.on_timeout(permit, busy_s=3.0)
    limit.limit = 1.0
    assert not limit.has_room(8)  # the server is still on the abandoned attempt
    clock.now = 3.0
    assert limit.has_room(8)  # alone at the server, whatever the limit


def test_other_errors_release_without_a_word() -> None:
    limit = ConcurrencyLimit(16, TIMEOUT, Clock())
    permits = fill(limit, 5)
    for permit in permits:
        limit.release(permit)
    assert limit.limit == START_LIMIT * 5 and limit.slow_start and limit.busy() == 0


def test_never_above_concurrency_requests_of_the_largest_size() -> None:
    limit = ConcurrencyLimit(3, TIMEOUT, Clock())
    for _ in range(10):
        for permit in fill(limit, 4):
            limit.on_answer(permit, 0.1, 0.0)
    assert limit.limit == 12 and len(fill(limit, 4)) == 3


async def test_waiters_are_served_in_order_as_slots_free() -> None:
    limit = ConcurrencyLimit(2, TIMEOUT, Clock())
    first = await limit.acquire(1)
    await limit.acquire(1)
    served: list[str] = []

    async def wait(name: str) -> None:
        await limit.acquire(1)
        served.append(name)

    waiters = [asyncio.create_task(wait(name)) for name in ("a", "b")]
    await asyncio.sleep(0)
    assert served == []
    limit.release(first)
    await asyncio.sleep(0.01)
    assert served == ["a"]
    waiters[1].cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert not limit._queue  # the cancelled waiter left the line


async def test_a_retry_waits_until_the_abandoned_attempt_is_done() -> None:
    limit = ConcurrencyLimit(1, 1.0, time.monotonic)
    permit = await limit.acquire(1)
    limit.on_timeout(permit, busy_s=0.2)
    started = time.monotonic()
    await limit.acquire(1)
    assert 0.19 <= time.monotonic() - started < 1.0


def test_service_time_is_the_larger_of_no_load_and_one_at_a_time() -> None:
    service = ServiceTime()
    assert service.per_input is None and service.of(10) == 0
    service.note_answer(1.0, inputs=100, busy=100)  # alone: 10 ms per input
    assert service.per_input == pytest.approx(0.01)
    service.note_answer(4.0, inputs=100, busy=400)  # behind 300 others, still 10 ms each
    assert service.per_input == pytest.approx(0.01)
    for _ in range(20):  # the server got four times slower
        service.note_answer(16.0, inputs=100, busy=400)
    assert service.per_input == pytest.approx(0.04, rel=0.01)


def test_a_parallel_server_reads_by_its_no_load_time() -> None:
    service = ServiceTime()
    for _ in range(20):  # 16 requests of 256 at once, each answered in 0.5 s
        service.note_answer(0.5, inputs=256, busy=16 * 256)
    assert service.per_input == pytest.approx(0.5 / 256)


def test_a_timeout_raises_the_service_time() -> None:
    service = ServiceTime()
    service.note_timeout(60.0, busy=256)
    assert service.per_input == pytest.approx(60.0 / 256)


def test_the_batch_cap_starts_small_and_doubles_to_what_fits() -> None:
    cap = BatchCap(256, TIMEOUT)
    assert cap.size == START_BATCH
    sizes = []
    for _ in range(4):
        cap.on_answer(0.05)  # 50 ms per input: 150 inputs fit in an eighth of the timeout
        sizes.append(cap.size)
    assert sizes == [64, 128, int(BATCH_SHARE * TIMEOUT / 0.05), 150]


def test_the_batch_cap_reaches_batch_size_on_a_fast_server() -> None:
    cap = BatchCap(256, TIMEOUT)
    for _ in range(3):
        cap.on_answer(0.001)
    assert cap.size == 256


def test_the_batch_cap_shrinks_at_once_when_the_server_slows() -> None:
    cap = BatchCap(256, TIMEOUT)
    cap.size = 256
    cap.on_answer(0.1)
    assert cap.size == 75


def test_a_timeout_halves_the_batch_cap_and_it_grows_back_slowly() -> None:
    cap = BatchCap(256, TIMEOUT)
    cap.size = 256
    cap.on_timeout(256)
    assert cap.size == 128
    cap.on_answer(0.001)
    assert cap.size == 144  # an eighth more per answer


@pytest.mark.parametrize(("size", "cap", "first"), [(256, 256, 256), (256, 250, 128), (256, 100, 86),
                                                    (10, 3, 3), (5, 1, 1), (7, 0, 1)])
def test_batches_are_cut_in_even_pieces(size: int, cap: int, first: int) -> None:
    assert piece_size(size, cap) == first


async def test_a_slot_adapts_to_each_outcome() -> None:
    clock = Clock()
    capacity = Capacity(16, 256, TIMEOUT, clock)
    async with capacity.slot(32) as slot:
        slot.answered(0.32)  # 10 ms per input, alone
    assert capacity.service.per_input == pytest.approx(0.01)
    assert capacity.batch.size == 64
    with pytest.raises(InternalServerError):
        async with capacity.slot(32):
            raise InternalServerError("busy", status=503)
    assert capacity.limit.busy() == 0 and capacity.batch.size == 64
    with pytest.raises(APITimeoutError):
        async with capacity.slot(64):
            clock.now += TIMEOUT
            raise APITimeoutError("no answer within 60 s")
    assert capacity.batch.size == 32 and not capacity.limit.slow_start
    assert capacity.limit.busy() == 64  # the server is still computing it
    clock.now += TIMEOUT
    assert capacity.limit.busy() == 0
