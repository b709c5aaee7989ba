"""The reader thread: items in order into the queue, read ahead no further than its bounds, errors raised on
the loop, state changes applied on the loop in order with the items, and nothing applied once cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from pipeline.errors import InputError
from pipeline.sources.reader import ReaderThread


async def drain(queue: asyncio.Queue[int | str], count: int) -> list[int | str]:
    return [await asyncio.wait_for(queue.get(), 5) for _ in range(count)]


async def test_items_arrive_in_order_and_the_error_after_them() -> None:
    queue: asyncio.Queue[int | str] = asyncio.Queue(maxsize=2)
    reader: ReaderThread[int | str] = ReaderThread(queue, ahead=3)

    def items() -> Iterator[int]:
        yield from range(50)
        raise InputError("the input broke at line 51")

    running = asyncio.ensure_future(reader.run(items))
    assert await drain(queue, 50) == list(range(50))
    with pytest.raises(InputError, match="line 51"):
        await asyncio.wait_for(running, 5)


async def test_reads_ahead_no_further_than_the_queue_and_the_buffer() -> None:
    queue: asyncio.Queue[int | str] = asyncio.Queue(maxsize=2)
    reader: ReaderThread[int | str] = ReaderThread(queue, ahead=4)
    read: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            read.append(i)
            yield i

    running = asyncio.ensure_future(reader.run(items))
    await asyncio.sleep(0.2)  # nobody takes from the queue
    # the queue (2), one the pump holds, the buffer (4) and one the reader waits to hand over
    assert len(read) == 2 + 1 + 4 + 1
    await drain(queue, 20)
    await asyncio.sleep(0.1)
    assert 20 + 8 - 2 <= len(read) <= 20 + 8  # the reader is woken once the buffer is down to half (2)
    running.cancel()


async def test_calls_apply_on_the_loop_in_order_and_none_after_a_cancel() -> None:
    queue: asyncio.Queue[int | str] = asyncio.Queue(maxsize=100)
    reader: ReaderThread[int | str] = ReaderThread(queue)
    loop_thread = threading.get_ident()
    applied: list[tuple[str, bool]] = []
    blocked, release, ended = threading.Event(), threading.Event(), threading.Event()

    def items() -> Iterator[int | str]:
        try:
            for i in range(3):
                reader.call(lambda i=i: applied.append((f"call {i}", threading.get_ident() == loop_thread)))
                yield i
            blocked.set()
            release.wait(5)  # a read that blocks while the run is cancelled
            reader.call(lambda: applied.append(("late", True)))
            yield "late"
        finally:
            ended.set()

    running = asyncio.ensure_future(reader.run(items))
    assert await drain(queue, 3) == [0, 1, 2]
    assert await asyncio.to_thread(blocked.wait, 5)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    release.set()
    assert await asyncio.to_thread(ended.wait, 5)  # the thread ended at its next item
    await asyncio.sleep(0.05)
    assert applied == [("call 0", True), ("call 1", True), ("call 2", True)]
    assert queue.empty()
