"""A write handed to the writer thread is never dropped, whatever cancels the wait for it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pyarrow as pa

from pipeline.sinks.parquet import PartWriter, closed_parts
from pipeline.sinks.writer import WriterThread

SCHEMA = pa.schema([pa.field("id", pa.string())])


async def test_a_cancelled_wait_leaves_a_queued_write_to_finish(tmp_path: Path) -> None:
    """The thread is busy (a slow write before it, a busy host) when the run's end cancels the flusher:
    the write queued behind must still happen. run_in_executor dropped it."""
    writer = WriterThread()
    parts = PartWriter(tmp_path, SCHEMA, flush_rows=10, flush_seconds=60)
    for i in range(3):
        parts.add({"id": f"r{i}"})
    release = threading.Event()
    busy = asyncio.create_task(writer.run(release.wait, 10))
    flusher = asyncio.create_task(writer.run(parts.write, *parts.take()))  # type: ignore[misc]
    await asyncio.sleep(0.05)  # the write waits in the thread's queue
    flusher.cancel()
    await asyncio.gather(flusher, return_exceptions=True)
    release.set()
    await busy
    await asyncio.to_thread(writer.close)
    assert [p.name for p in closed_parts(tmp_path)] == ["part-000001.parquet"]
    assert parts.written == 3


async def test_a_running_write_finishes_after_its_waiter_is_cancelled(tmp_path: Path) -> None:
    writer = WriterThread()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    task = asyncio.create_task(writer.run(slow))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    release.set()
    await asyncio.to_thread(writer.close)
    assert task.cancelled()
