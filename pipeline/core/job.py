"""The Job base both engines build on: one run of one job spec, whatever carries its requests.

It owns what a run's outcome is made of: the part writers of results/ and failures/, the stats fed by
events, the budgets and stop rules, failure rows, and the commits. The online engine (pipeline/online)
adds the queue and the workers; the batch engine (pipeline/batch) adds batch files, polling and collecting.

State belongs to the loop's thread. The producer runs on another (the reader thread online, the writer
thread in batch mode): what it changes goes through `from_producer`, and `emit` and `fail_rows` marshal
themselves to the loop when called from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.checkpoint import OutputFolder
from pipeline.core.exitcodes import ExitCode
from pipeline.core.options import RunOptions
from pipeline.core.records import FAILURE_SCHEMA, error_code, failure_record, result_schema
from pipeline.endpoints.base import Item, RowError
from pipeline.errors import APIError, InputError, is_transient_failure
from pipeline.events import Event, EventSink, Failed, Skipped
from pipeline.preflight import Preflight
from pipeline.pricing import prices_for
from pipeline.redact import get_logger, redact
from pipeline.sinks.parquet import OutputWriteError, PartWriter
from pipeline.sinks.writer import WriterThread
from pipeline.sources.base import Row
from pipeline.sources.files import RowFiles
from pipeline.sources.reader import ReaderThread
from pipeline.spec import JobSpec
from pipeline.stats import RunStats

log = get_logger("pipeline")
T = TypeVar("T")
SKIPPED_PER_EVENT = 1000  # rows skipped as done, reported together: one event each would cost the loop


@dataclass
class SkippedCount:
    """Rows the producer skipped as done and has not reported yet."""

    rows: int = 0
    failed_earlier: int = 0  # of them: rows whose earlier failure stands

    def add(self, failed_earlier: bool) -> int:
        self.rows += 1
        self.failed_earlier += failed_earlier
        return self.rows

    def report(self, emit: EventSink) -> None:
        """As Skipped events (those that failed earlier apart), then start counting again."""
        if self.rows > self.failed_earlier:
            emit(Skipped(rows=self.rows - self.failed_earlier, failed_earlier=False))
        if self.failed_earlier:
            emit(Skipped(rows=self.failed_earlier, failed_earlier=True))
        self.rows = self.failed_earlier = 0


class Job:
    """One run of one job spec."""

    def __init__(self, spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder) -> None:
        self.spec = spec
        self.options = options
        self.plan = plan
        self.out = out
        self.endpoint = plan.endpoint
        self.stats = RunStats(total=plan.total)
        self.results = PartWriter(out.results, result_schema(spec, self.endpoint),
                                  spec.output.flush_rows, spec.output.flush_seconds, tag=plan.part_tag)
        self.failures = PartWriter(out.failures, FAILURE_SCHEMA, spec.output.flush_rows, spec.output.flush_seconds,
                                   tag=plan.part_tag)
        self.stopping = asyncio.Event()
        self.stop_code: ExitCode | None = None
        self.stop_message: str | None = None
        self.sent_rows = 0  # the producer's own count (budgets, --limit)
        self.prices = prices_for(spec)
        self.deadline = time.monotonic() + options.max_duration_s if options.max_duration_s else None
        self.reader: ReaderThread[Any] | None = None  # the thread the producer runs on, when it has one
        self.row_files = RowFiles()  # reads the files rows name, for endpoints that need them
        self._writer = WriterThread()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._committing: PartWriter | None = None  # whose part is being written on the writer thread
        self._committed = asyncio.Event()  # set after each part write: workers held by a full buffer go on
        self._due = asyncio.Event()  # a buffer reached flush_rows: commit now, not at the next tick

    async def on_writer_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await self._writer.run(call, *args)

    def close(self) -> None:
        """Stop the writer thread, after every write handed to it has finished."""
        self._writer.close()

    def bind_loop(self) -> None:
        """Remember the loop the job runs on: events and failure rows from other threads go through it."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def call_on_loop(self, call: Callable[..., object], *args: Any) -> None:
        """Have the job's loop call `call` soon; safe from any thread (a stop asked for by another)."""
        assert self._loop is not None, "bind_loop first"
        self._loop.call_soon_threadsafe(call, *args)

    def cost(self) -> float:
        s = self.stats
        if self.prices is None:
            return 0.0
        return self.prices.cost(s.tokens_in, s.tokens_out, s.images, s.audio_seconds, tokens_cached=s.tokens_cached)

    def emit(self, event: Event) -> None:
        """Count an event, then hand it to the caller's callback (on the loop's thread, whoever emits)."""
        if self._off_loop():
            self.call_on_loop(self.emit, event)
            return
        self.stats.apply(event)
        if self.options.on_event is not None:
            self.options.on_event(event)

    def stop(self, code: ExitCode, message: str | None = None) -> None:
        """Stop now: requests in flight may finish, queued ones are left for the next run."""
        self.finish_early(code, message)
        self.stopping.set()

    def finish_early(self, code: ExitCode, message: str | None = None) -> bool:
        """Take no more rows but finish those already taken (budgets). The first reason wins."""
        if self._off_loop():  # a budget the reader thread reached: the stop reason is the loop's to set
            self.call_on_loop(self.finish_early, code, message)
            return True
        if self.stop_code is None:
            self.stop_code, self.stop_message = code, message
        return True

    # ---- producing work (off the loop: the reader thread online, the writer thread in batch mode)

    def prepared(self, rows: Iterator[Row]) -> Iterator[Item]:
        """Rows to send as endpoint items: done ones skipped, bad ones failed, until a budget is reached.
        Runs off the loop: `sent_rows` is the producer's own, every other change goes through from_producer."""
        skipped = SkippedCount()
        emit = functools.partial(self.from_producer, self.emit)
        try:
            for row in rows:
                if row.id in self.plan.done:
                    if skipped.add(row.id in self.plan.failed_before) >= SKIPPED_PER_EVENT:
                        skipped.report(emit)
                    continue
                if self.budget_reached():
                    return
                item = self._item(row)
                if item is not None:
                    self.sent_rows += 1
                    yield item
        finally:
            skipped.report(emit)

    def _item(self, row: Row) -> Item | None:
        """The row's item, or None once it is failed (a row the source could not read, or one the endpoint
        refuses). The files the endpoint needs (an audio file's first bytes, a vision input's image) are
        read here, on the producer's thread, so that prepare stays pure."""
        try:
            if row.error is not None:
                raise RowError(row.error)
            return self.endpoint.prepare(self.row_files.attach(row, self.endpoint.needs(row)))
        except RowError as exc:
            self.from_producer(self.fail_rows, [row], exc, "input")
            return None

    def from_producer(self, call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Apply a change the producer makes to state the loop owns (failure rows, counters). From the reader
        thread it is handed over in order with the batches, and dropped once the run stopped listening (a
        failure row counted after the last part write would fail the end-of-run check); anywhere else it is
        called at once (emit and fail_rows marshal themselves from batch mode's writer thread)."""
        reader = self.reader
        if reader is not None and reader.on_thread():
            reader.call(functools.partial(call, *args, **kwargs))
        else:
            call(*args, **kwargs)

    def as_counted(self, rows: Iterator[Row]) -> Iterator[Row]:
        """The rows preflight counted, no more and no fewer. An input that shrinks under a running job
        would lose rows silently; one that grows would let in ids never checked for repeats."""
        seen = 0
        for row in rows:
            seen += 1
            if seen > self.plan.total:
                break
            yield row
        if seen != self.plan.total:
            now = "more" if seen > self.plan.total else str(seen)
            raise InputError(f"{self.plan.source.path}: the input changed while it was read ({self.plan.total} "
                             f"rows at the start, {now} now); results so far are kept, run again once it is stable")

    def budget_reached(self) -> bool:
        """Whether the producer must take no more rows (a budget, --limit, a stop); engines may add theirs."""
        if self.options.limit is not None and self.sent_rows >= self.options.limit:
            return True
        return self.over_budget() or self.stopping.is_set()

    def over_budget(self) -> bool:
        """Whether a budget of the spec or --max-duration is reached (the stop reason is then set)."""
        limits = self.spec.limits
        if limits.max_rows is not None and self.sent_rows >= limits.max_rows:
            return self.finish_early(ExitCode.BUDGET, f"stopped at max_rows = {limits.max_rows}; run again to "
                                     "continue")
        if limits.max_tokens is not None and self.stats.tokens_in + self.stats.tokens_out >= limits.max_tokens:
            return self.finish_early(ExitCode.BUDGET, f"stopped at max_tokens = {limits.max_tokens}; run again to "
                                     "continue")
        if limits.max_cost is not None and self.prices is not None and self.cost() >= limits.max_cost:
            return self.finish_early(ExitCode.BUDGET, f"stopped at max_cost = {limits.max_cost} (estimated); "
                                     "run again to continue")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return self.finish_early(ExitCode.BUDGET, "stopped at --max-duration; run again to continue")
        return False

    # ---- failing rows

    def _off_loop(self) -> bool:
        """Whether this is another thread than the loop's (batch input files are written on the writer's)."""
        return self._loop_thread is not None and threading.get_ident() != self._loop_thread

    def fail_rows(self, rows: list[Row], error: BaseException, stage: str) -> None:
        """Buffer a failure row for each of `rows` and count them (`stage`: input, request or internal)."""
        if self._off_loop():  # buffers and counters belong to the loop's thread
            self.call_on_loop(self.fail_rows, rows, error, stage)
            return
        for row in rows:
            self.failures.add(failure_record(row, error, stage))
        code = (error.code if isinstance(error, APIError) else None) or error_code(error)
        status = error.status if isinstance(error, APIError) else None
        self.emit(Failed(rows=len(rows), code=code, requested=stage == "request",
                         transient=is_transient_failure(stage, type(error).__name__, status)))
        self.note_added(self.failures)

    # ---- committing

    def note_added(self, writer: PartWriter) -> None:
        """A buffer that reached flush_rows is committed now, not at the next tick (bounds a crash's redo)."""
        if len(writer) >= writer.flush_rows:
            self._due.set()

    async def room_for(self, writer: PartWriter) -> None:
        """Hold a worker's answer while that buffer's last part is being written. What a crash can cost is
        then one part being written (about flush_rows) plus the answers held (the requests in flight),
        never a part being written and a second buffer filled behind it. The loop itself never waits."""
        while self._committing is writer and not self.stopping.is_set():
            self._committed.clear()
            await self._committed.wait()

    async def flush_loop(self) -> None:
        """Commit each buffer once it is due: at flush_rows at once, at flush_seconds within 0.1 s."""
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow the run's cancel
                async with asyncio.timeout(0.1):
                    await self._due.wait()
            self._due.clear()
            await self.flush(only_due=True)

    async def flush(self, only_due: bool = False) -> bool:
        """Commit the buffers (those due); whether all went well. A write that fails stops the run: its rows
        stay uncommitted, so the next run sends them again; the flusher itself never dies of it."""
        ok = True
        for writer in (self.results, self.failures):
            if only_due and not writer.due():
                continue
            taken = writer.take()
            if taken is None:
                continue
            self._committing = writer
            try:
                await self.on_writer_thread(writer.write, *taken)
            except OutputWriteError as exc:
                ok = False
                self.stop(ExitCode.OUTPUT, str(exc))
            except Exception as exc:  # a bug or a value pyarrow refuses: the run stops, the rows are redone
                ok = False
                log.debug("part write failed", exc_info=True)
                self.stop(ExitCode.INTERNAL, f"internal error: could not write part {taken[0]} of {writer.folder} "
                          f"({type(exc).__name__}: {redact(str(exc)[:300])}); its {len(taken[1])} rows were not "
                          "committed and a rerun sends them again")
            finally:
                self._committing = None
                self._committed.set()
        return ok

    def uncommitted(self) -> tuple[int, int]:
        """(results, failures) this run counted but did not commit: both 0 at the end of every sound run."""
        return self.stats.succeeded - self.results.written, self.stats.failed - self.failures.written
