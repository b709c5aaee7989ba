"""The thread inputs are read on, feeding the runner's bounded queue.

Reading rows is blocking work: file and object reads, listing a folder in object storage, the checks an
endpoint makes on a row's files (an audio file's first bytes, a vision input's image). On the event loop,
one 100 ms read would hold every worker for 100 ms; here it holds only this thread, while the workers go
on with the batches already handed over.

Handing over one batch at a time with `run_coroutine_threadsafe` costs two thread wake-ups per batch
(about 0.2 ms of CPU, as much as sending a request), so batches go through a short buffer instead: the
loop is woken only when its pump has run dry, and this thread only when the buffer has drained to half.
The buffer holds `ahead` batches at most, so the input read ahead of the workers stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

READ_AHEAD = 8  # most batches buffered between this thread and the queue, on top of the queue's own bound


class ReaderClosed(Exception):
    """The loop side has stopped listening (the run is ending): the reader thread ends at once."""


@dataclass(frozen=True, slots=True)
class _Call:
    """A change to state the loop owns (a failure row, a counter), applied in order with the batches."""

    apply: Callable[[], object]


@dataclass(frozen=True, slots=True)
class _End:
    error: Exception | None


class ReaderThread(Generic[T]):
    """Runs an iterator of items on a thread of its own and puts each item into an asyncio queue."""

    def __init__(self, queue: asyncio.Queue[T], ahead: int | None = None, name: str = "pipeline-input") -> None:
        self._queue = queue
        # At most half the queue's own bound: the input read ahead stays near what the runner chose.
        self._ahead = max(1, ahead if ahead is not None else min(READ_AHEAD, queue.maxsize // 2))
        self._name = name
        self._cond = threading.Condition()
        self._ready: deque[T | _Call | _End] = deque()  # guarded by _cond, like the two flags below
        self._open = True  # False once the loop side stopped: nothing handed over after is applied
        self._idle = False  # the pump waits for a wake-up: the next item must send one
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread_id: int | None = None

    async def run(self, items: Callable[[], Iterable[T]]) -> None:
        """Read `items()` on the thread into the queue, until their end; raise what reading raised.

        Cancelled (the run ends, perhaps with a read still blocked): the thread stops at its next step,
        and whatever it hands over from then on is dropped."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        thread = threading.Thread(target=self._read, args=(items,), name=self._name, daemon=True)
        thread.start()
        try:
            await self._pump()
        finally:
            self._close()

    def on_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    def call(self, apply: Callable[[], object]) -> None:
        """From the reader thread: run `apply()` on the loop, after the items handed over before it.
        Once the loop side has stopped listening, dropped (the reader ends at its next item)."""
        with contextlib.suppress(ReaderClosed):  # also called from finally blocks of closing generators
            self._hand(_Call(apply))

    # ---- the loop's side

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            entry = self._take()
            if entry is None:
                await self._wake.wait()
                self._wake.clear()
            elif isinstance(entry, _End):
                if entry.error is not None:
                    raise entry.error
                return
            elif isinstance(entry, _Call):
                entry.apply()
            else:
                await self._queue.put(entry)  # the queue's bound holds the reader back when workers are busy

    def _take(self) -> T | _Call | _End | None:
        """The next entry, or None (marked idle: the reader wakes the pump with its next entry)."""
        with self._cond:
            if not self._ready:
                self._idle = True
                return None
            entry = self._ready.popleft()
            if len(self._ready) <= self._ahead // 2:
                self._cond.notify()  # not at every entry: one wake-up refills half the buffer
            return entry

    def _close(self) -> None:
        with self._cond:
            self._open = False
            self._ready.clear()
            self._cond.notify_all()

    # ---- the reader's side

    def _read(self, items: Callable[[], Iterable[T]]) -> None:
        self._thread_id = threading.get_ident()  # here, not after start(): the items ask on_thread() at once
        end = _End(None)
        try:
            for item in items():
                self._hand(item)
        except ReaderClosed:
            return
        except Exception as error:  # raised on the loop's side: a broken input stops the run there
            end = _End(error)
        with contextlib.suppress(ReaderClosed):
            self._hand(end)

    def _hand(self, entry: T | _Call | _End) -> None:
        with self._cond:
            while self._open and len(self._ready) >= self._ahead and not isinstance(entry, _End):
                self._cond.wait()
            if not self._open:
                raise ReaderClosed
            self._ready.append(entry)
            wake, self._idle = self._idle, False
        if wake:
            self._wake_pump()

    def _wake_pump(self) -> None:
        assert self._loop is not None and self._wake is not None
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            raise ReaderClosed from None
