"""Wires one job: source -> endpoint -> client -> sinks, with bounded queues and N workers.

The runner holds no business rules: endpoints build and parse, the client paces and retries,
the sinks commit parts, RunStats counts. This module decides only what runs when, and how
a run stops (end of input, a signal, a budget, or an abort).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import signal
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pyarrow as pa

from pipeline.checkpoint import OutputFolder, now_iso
from pipeline.client.auth import TokenCredential, make_auth
from pipeline.client.concurrency import piece_size
from pipeline.client.deployment import Deployment, Router
from pipeline.client.limiter import Pacer
from pipeline.client.service import USER_AGENT, ServiceClient
from pipeline.cloud_checkpoint import Output
from pipeline.crashpoints import CrashPlan, CrashPoint, crash_point, install
from pipeline.endpoints.base import Endpoint, Item, RowError
from pipeline.errors import (
    AnswerCountError,
    APIError,
    AuthenticationError,
    BadRequestError,
    InputError,
    InsufficientQuotaError,
    JobAborted,
    NotFoundError,
    PermissionDeniedError,
    PipelineError,
    RequestTooLargeError,
    UnprocessableEntityError,
    is_transient_failure,
)
from pipeline.jobwide import SameRefusal, could_be_job_wide
from pipeline.preflight import Preflight, preflight
from pipeline.pricing import prices_for
from pipeline.redact import get_logger, redact
from pipeline.sinks.files import OutputFiles
from pipeline.sinks.parquet import OutputWriteError, PartWriter
from pipeline.sinks.writer import WriterThread
from pipeline.sources.base import Row
from pipeline.sources.reader import ReaderThread
from pipeline.spec import JobSpec, ServiceSpec
from pipeline.stats import RunStats
from pipeline.storage import Location, StorageError
from pipeline.version import __version__

log = get_logger("pipeline")

EXIT_OK, EXIT_ROWS_FAILED, EXIT_BAD_INPUT, EXIT_ABORTED = 0, 1, 2, 3
EXIT_BUDGET, EXIT_OUTPUT, EXIT_INTERNAL, EXIT_LOCKED = 4, 5, 70, 75
T = TypeVar("T")
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
SKIPPED_PER_EVENT = 1000  # rows skipped as done, reported together: one event each would cost the loop

COMMON_FIELDS = [pa.field("request_id", pa.string()), pa.field("attempts", pa.int32()),
                 pa.field("latency_ms", pa.float64()), pa.field("deployment", pa.string())]
FAILURE_SCHEMA = pa.schema([
    pa.field("id", pa.string()), pa.field("line", pa.int64()), pa.field("stage", pa.string()),
    pa.field("error_class", pa.string()), pa.field("status", pa.int32()), pa.field("error_code", pa.string()),
    pa.field("message", pa.string()), pa.field("detail", pa.string()), pa.field("request_id", pa.string()),
    pa.field("attempts", pa.int32()), pa.field("failed_at", pa.string()),
])


@dataclass
class RunOptions:
    retry_failed: bool = False
    force: bool = False
    limit: int | None = None
    max_duration_s: float | None = None
    credential: TokenCredential | None = None
    handle_signals: bool = False
    drain_s: float = 10.0
    on_event: Callable[..., None] | None = None
    on_progress: Callable[[RunStats, str], None] | None = None
    progress_interval_s: float = 30.0
    crash_plan: CrashPlan | None = None  # test hook: where to kill the process (crashpoints.py)


@dataclass
class RunResult:
    exit_code: int
    summary: dict[str, Any]
    output: Path | Location
    message: str | None = None
    stats: RunStats = field(default_factory=RunStats, repr=False)


def result_schema(spec: JobSpec, endpoint: Endpoint) -> pa.Schema:
    keep = [pa.field(name, pa.string()) for name in spec.output.keep]
    return pa.schema([pa.field("id", pa.string()), *endpoint.result_fields(), *COMMON_FIELDS, *keep])


def _keep_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def failure_record(row: Row, error: BaseException, stage: str, attempts: int = 0) -> dict[str, Any]:
    api = error if isinstance(error, APIError) else None
    return {
        "id": row.id, "line": row.line, "stage": stage, "error_class": type(error).__name__,
        "status": api.status if api else None, "error_code": (api.code if api else None) or _code_for(error),
        "message": redact(api.message if api else str(error)), "detail": api.detail if api else None,
        "request_id": api.request_id if api else None,
        "attempts": getattr(error, "attempts", attempts), "failed_at": now_iso(),
    }


def _code_for(error: BaseException) -> str:
    return "invalid_row" if isinstance(error, RowError) else type(error).__name__


@dataclass
class _Skipped:
    """Rows the producer skipped as done and has not reported yet."""

    rows: int = 0
    failed_earlier: int = 0  # of them: rows whose earlier failure stands

    def add(self, failed_earlier: bool) -> int:
        self.rows += 1
        self.failed_earlier += failed_earlier
        return self.rows

    def report(self, emit: Callable[..., object]) -> None:
        """As `skipped` events (those that failed earlier apart), then start counting again."""
        if self.rows > self.failed_earlier:
            emit("skipped", rows=self.rows - self.failed_earlier, failed_earlier=False)
        if self.failed_earlier:
            emit("skipped", rows=self.failed_earlier, failed_earlier=True)
        self.rows = self.failed_earlier = 0


class Job:
    """One run of one job spec."""

    def __init__(self, spec: JobSpec, options: RunOptions, plan: Preflight, out: Output) -> None:
        self.spec = spec
        self.options = options
        self.plan = plan
        self.out = out
        self.endpoint = plan.endpoint
        self.stats = RunStats(total=plan.total)
        self.results = PartWriter(out.results, result_schema(spec, self.endpoint),
                                  spec.output.flush_rows, spec.output.flush_seconds)
        self.failures = PartWriter(out.failures, FAILURE_SCHEMA, spec.output.flush_rows, spec.output.flush_seconds)
        self.queue: asyncio.Queue[list[Item] | None] = asyncio.Queue(maxsize=max(2, spec.limits.concurrency * 2))
        self.stopping = asyncio.Event()
        self.stop_code: int | None = None
        self.stop_message: str | None = None
        self.any_success = False
        self.sent_rows = 0
        self._same_refusal = SameRefusal()
        self._held_refusals: list[tuple[list[Row], APIError]] = []  # failed once known to be the rows'
        self.files: OutputFiles | None = None
        self.prices = prices_for(spec)
        self._deadline = time.monotonic() + options.max_duration_s if options.max_duration_s else None
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

    def cost(self) -> float:
        s = self.stats
        return self.prices.cost(s.tokens_in, s.tokens_out, s.images, s.audio_seconds) if self.prices else 0.0

    def emit(self, kind: str, **data: Any) -> None:
        if self._off_loop():
            self._loop.call_soon_threadsafe(functools.partial(self.emit, kind, **data))  # type: ignore[union-attr]
            return
        self.stats.handle(kind, **data)
        if self.options.on_event is not None:
            self.options.on_event(kind, **data)

    def stop(self, code: int, message: str | None = None) -> None:
        """Stop now: requests in flight may finish, queued ones are left for the next run."""
        self.finish_early(code, message)
        self.stopping.set()

    def finish_early(self, code: int, message: str | None = None) -> bool:
        """Take no more rows but finish those already taken (budgets). The first reason wins."""
        if self._off_loop():  # a budget the reader thread reached: the stop reason is the loop's to set
            self._loop.call_soon_threadsafe(self.finish_early, code, message)  # type: ignore[union-attr]
            return True
        if self.stop_code is None:
            self.stop_code, self.stop_message = code, message
        return True

    # ---- producing work (on the reader thread: sources.reader)

    _reader: ReaderThread[list[Item] | None] | None = None  # set by produce()

    def _prepared(self, rows: Iterator[Row]) -> Iterator[Item]:
        """Rows to send as endpoint items: done ones skipped, bad ones failed, until a budget is reached.
        Runs off the loop (the reader thread; batch mode's writer thread): `sent_rows` is the producer's
        own, every other change goes through _from_producer."""
        skipped = _Skipped()
        emit = functools.partial(self._from_producer, self.emit)
        try:
            for row in rows:
                if row.id in self.plan.done:
                    if skipped.add(row.id in self.plan.failed_before) >= SKIPPED_PER_EVENT:
                        skipped.report(emit)
                    continue
                if self._budget_reached():
                    return
                item = self._item(row)
                if item is not None:
                    self.sent_rows += 1
                    yield item
        finally:
            skipped.report(emit)

    def _item(self, row: Row) -> Item | None:
        """The row's item, or None once it is failed (a row the source could not read, or one the endpoint
        refuses). prepare may read the row's files: an audio file's first bytes, a vision input's image."""
        try:
            if row.error is not None:
                raise RowError(row.error)
            return self.endpoint.prepare(row)
        except RowError as exc:
            self._from_producer(self._fail_rows, [row], exc, "input")
            return None

    def _from_producer(self, call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Apply a change the producer makes to state the loop owns (failure rows, counters). From the reader
        thread it is handed over in order with the batches, and dropped once the run stopped listening (a
        failure row counted after the last part write would fail the end-of-run check); anywhere else it is
        called at once (emit and _fail_rows marshal themselves from batch mode's writer thread)."""
        reader = self._reader
        if reader is not None and reader.on_thread():
            reader.call(functools.partial(call, *args, **kwargs))
        else:
            call(*args, **kwargs)

    def _as_counted(self, rows: Iterator[Row]) -> Iterator[Row]:
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

    def _budget_reached(self) -> bool:
        limits = self.spec.limits
        if self.options.limit is not None and self.sent_rows >= self.options.limit:
            return True
        if limits.max_rows is not None and self.sent_rows >= limits.max_rows:
            return self.finish_early(EXIT_BUDGET, f"stopped at max_rows = {limits.max_rows}; run again to continue")
        if limits.max_tokens is not None and self.stats.tokens_in + self.stats.tokens_out >= limits.max_tokens:
            return self.finish_early(EXIT_BUDGET, f"stopped at max_tokens = {limits.max_tokens}; run again to continue")
        if limits.max_cost is not None and self.prices is not None and self.cost() >= limits.max_cost:
            return self.finish_early(EXIT_BUDGET, f"stopped at max_cost = {limits.max_cost} (estimated); "
                                     "run again to continue")
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return self.finish_early(EXIT_BUDGET, "stopped at --max-duration; run again to continue")
        return self.stopping.is_set()

    async def produce(self, max_request_tokens: int | None) -> None:
        """Fill the queue with batches, then one end marker per worker. Rows are read, counted, prepared and
        grouped on the reader thread: a slow disk or object store holds that thread, never the workers."""
        def batches() -> Iterator[list[Item]]:
            rows = self._as_counted(self.plan.source.rows())
            return self.endpoint.group(self._prepared(rows), max_request_tokens)

        self._reader = ReaderThread(self.queue)
        try:
            if not await _unless_stopped(self._reader.run(batches), self.stopping):
                self._release_idle_workers()  # a stop: no more rows, even with a read still blocked
                return
        except (InputError, StorageError, OSError) as exc:  # the input broke mid-run: stop, exit 2
            self.stop(EXIT_BAD_INPUT, str(exc))
            self._release_idle_workers()  # idle workers must not wait forever
            return
        except Exception as exc:  # a bug must stop the run, not leave the workers waiting for rows
            log.exception("unexpected error while reading the input")
            self.stop(EXIT_INTERNAL, f"internal error while reading the input ({type(exc).__name__}: "
                      f"{redact(str(exc)[:300])}); results so far are kept, run again to continue")
            self._release_idle_workers()
            return
        for _ in range(self.spec.limits.concurrency):
            await self.queue.put(None)

    def _release_idle_workers(self) -> None:
        """After a stop: wake workers waiting on an empty queue (a full queue wakes them by itself)."""
        for _ in range(self.spec.limits.concurrency):
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)

    # ---- working

    async def work(self, client: ServiceClient) -> None:
        while True:
            batch = await self.queue.get()
            if batch is None or self.stopping.is_set():
                return
            await self._process(client, batch)

    async def _process(self, client: ServiceClient, batch: list[Item]) -> None:
        # A server that computes a whole batch slower than the timeout gets it in pieces (client/concurrency.py).
        while len(batch) > (cap := client.router.batch_cap(self.spec.limits)):
            cut = piece_size(len(batch), cap)
            await self._process(client, batch[:cut])
            if self.stopping.is_set():
                return  # the rest is left for the next run, like the batches still queued
            batch = batch[cut:]
        request = self.endpoint.build(batch)
        try:
            results, response, attempts = await client.call(request, self.endpoint.parse)
            if self.endpoint.writes_files and self.files is not None:
                results = await self.endpoint.finish(request, results, self.files)
        except APIError as error:
            if self._refused_job_wide(batch, error):
                return
            if len(batch) > 1 and _blames_content(error) and not self.stopping.is_set():
                await self._split(client, batch)
            else:
                self._on_api_error(batch, error)
            return
        except OutputWriteError as error:
            self.stop(EXIT_OUTPUT, str(error))
            return
        except JobAborted as error:
            self.stop(EXIT_ABORTED, str(error))
            return
        except FileNotFoundError as error:  # an input file removed after it was checked
            gone = RowError(f"{error.filename or 'the input file'} disappeared before it was sent; restore it "
                            "and run again")
            self._fail_rows([item.row for item in batch], gone, "input")
            return
        except Exception as error:  # a bug must cost a failure row, never a silently lost row
            log.exception("unexpected error while processing rows %s", [item.row.id for item in batch[:3]])
            self._fail_rows([item.row for item in batch], error, "internal")
            return
        self._on_first_success()
        await self._room_for(self.results)
        latency_ms = round(response.latency_s * 1000, 2)
        tokens_in = tokens_out = images = 0
        audio_seconds = 0.0
        for item, result in zip(batch, results, strict=True):
            record = {"id": item.row.id, **result, "request_id": response.request_id, "attempts": attempts,
                      "latency_ms": latency_ms, "deployment": response.deployment}
            for name in self.spec.output.keep:
                record[name] = _keep_value(item.row.fields.get(name))
            self.results.add(record)
            tokens_in += result.get("prompt_tokens") or 0
            tokens_out += result.get("completion_tokens") or 0
            images += result.get("_image_count") or 0  # billing units endpoints may report
            audio_seconds += result.get("_audio_seconds") or 0.0
        crash_point(CrashPoint.RUNNER_ADDED)  # test hook: answered, buffered, not yet committed
        self.emit("done", rows=len(batch), latency_s=response.latency_s, tokens_in=tokens_in, tokens_out=tokens_out,
                  images=images, audio_seconds=audio_seconds)
        self._note_added(self.results)

    async def _split(self, client: ServiceClient, batch: list[Item]) -> None:
        """A batched request refused for its content: one row in it is bad, the others may be fine.
        Send each half on its own, down to the row to blame (log2(batch size) extra requests)."""
        half = len(batch) // 2
        await self._process(client, batch[:half])
        await self._process(client, batch[half:])

    def _on_api_error(self, batch: list[Item], error: APIError) -> None:
        if isinstance(error, AuthenticationError | PermissionDeniedError | InsufficientQuotaError) or (
                isinstance(error, NotFoundError) and not self.any_success):
            self.stop(EXIT_ABORTED, _abort_message(error, self.spec))
            return
        rows = [item.row for item in batch]
        if not self.any_success and could_be_job_wide(error):
            self._held_refusals.append((rows, error))  # failed once a success (or the end) shows it is theirs
            return
        self._fail_rows(rows, error, "request")

    def _refused_job_wide(self, batch: list[Item], error: APIError) -> bool:
        """The first answers are all the same refusal and nothing succeeded: stop the job with it (exit 3).
        The rows refused so far are not failed: a rerun after the fix sends them."""
        if self.any_success or not self._same_refusal.note(error, (item.row.id for item in batch)):
            return False
        self._held_refusals.clear()
        self.stop(EXIT_ABORTED, f"the service refused the job: the first requests were all answered with the same "
                  f"error and none succeeded ({error}); check the spec (api_version, model or deployment, "
                  "[params]) and run again")
        return True

    def _on_first_success(self) -> None:
        if not self.any_success:
            self.any_success = True
            self._same_refusal.clear()
            self.settle_refusals()

    def settle_refusals(self) -> None:
        """The refusals held back while they might have been the job's are the rows' after all: fail them."""
        held, self._held_refusals = self._held_refusals, []
        for rows, error in held:
            self._fail_rows(rows, error, "request")

    def _off_loop(self) -> bool:
        """Whether this is another thread than the loop's (batch input files are written on the writer's)."""
        return self._loop_thread is not None and threading.get_ident() != self._loop_thread

    def _fail_rows(self, rows: list[Row], error: BaseException, stage: str) -> None:
        if self._off_loop():  # buffers and counters belong to the loop's thread
            self._loop.call_soon_threadsafe(self._fail_rows, rows, error, stage)  # type: ignore[union-attr]
            return
        for row in rows:
            self.failures.add(failure_record(row, error, stage))
        code = (error.code if isinstance(error, APIError) else None) or _code_for(error)
        status = error.status if isinstance(error, APIError) else None
        self.emit("failed", rows=len(rows), code=code, requested=stage == "request",
                  transient=is_transient_failure(stage, type(error).__name__, status))
        self._note_added(self.failures)

    # ---- committing

    def _note_added(self, writer: PartWriter) -> None:
        """A buffer that reached flush_rows is committed now, not at the next tick (bounds a crash's redo)."""
        if len(writer) >= writer.flush_rows:
            self._due.set()

    async def _room_for(self, writer: PartWriter) -> None:
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
                self.stop(EXIT_OUTPUT, str(exc))
            except Exception as exc:  # a bug or a value pyarrow refuses: the run stops, the rows are redone
                ok = False
                log.debug("part write failed", exc_info=True)
                self.stop(EXIT_INTERNAL, f"internal error: could not write part {taken[0]} of {writer.folder} "
                          f"({type(exc).__name__}: {redact(str(exc)[:300])}); its {len(taken[1])} rows were not "
                          "committed and a rerun sends them again")
            finally:
                self._committing = None
                self._committed.set()
        return ok

    def uncommitted(self) -> tuple[int, int]:
        """(results, failures) this run counted but did not commit: both 0 at the end of every sound run."""
        return self.stats.succeeded - self.results.written, self.stats.failed - self.failures.written


async def _unless_stopped(work: Coroutine[Any, Any, None], stopping: asyncio.Event) -> bool:
    """Run `work` to its end (True; its error is raised), or until `stopping` is set (False: it is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        task.cancel()  # a no-op once it has ended
    if not task.done() or task.cancelled():
        return False
    task.result()
    return True


def _blames_content(error: APIError) -> bool:
    """400, 413 and 422 refuse what was sent: with several rows in one request, maybe one row.
    An answer with more or fewer results than inputs is split too: the same request would get the
    same answer (retry.splits_instead keeps it from being retried), smaller ones may not."""
    if isinstance(error, AnswerCountError | RequestTooLargeError):
        return True
    return isinstance(error, BadRequestError | UnprocessableEntityError) or error.status == 413


def _abort_message(error: APIError, spec: JobSpec) -> str:
    service = spec.service
    if isinstance(error, NotFoundError):
        hint = (f"check deployment = \"{service.model_name}\", base_url and api_version"
                if service.provider != "openai" else f"check model = \"{service.model_name}\" and base_url")
    elif isinstance(error, InsufficientQuotaError):
        hint = "the subscription or key is out of quota or credit: check its plan and billing, then run again"
    elif isinstance(error, AuthenticationError):
        hint = "check the API key (its environment variable) or the Entra ID role assignment"
    else:
        hint = "the key or identity lacks permission on this resource"
    return f"the service refused the job ({error}); {hint}"


def _needs_local_emulator(service: ServiceSpec) -> bool:
    return service.provider == "emulator" and not service.base_url


@contextlib.asynccontextmanager
async def local_emulator(spec: JobSpec) -> AsyncIterator[str | None]:
    """For provider = "emulator" without base_url: an emulator started in-process on a free port."""
    if not any(_needs_local_emulator(d.service) for d in spec.deployments()):
        yield None
        return
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.server import EmulatorServer

    opts = spec.service.emulator
    server = EmulatorServer(EmulatorConfig(
        rpm=opts.rpm, tpm=opts.tpm, window_s=opts.window_s, latency_ms=opts.latency_ms,
        error_rate=opts.error_rate, drop_rate=opts.drop_rate, truncate_rate=opts.truncate_rate,
        burst429_rate=opts.burst429_rate, seed=opts.seed))
    url = await server.start("127.0.0.1", 0)
    try:
        yield url
    finally:
        await server.stop()


def build_router(spec: JobSpec, endpoint: Endpoint, local_url: str | None,
                 credential: TokenCredential | None) -> Router:
    """One Deployment (URL, auth, pacer) per [[service.deployments]] entry, or for [service]."""
    deployments = []
    for entry in spec.deployments():
        service = entry.service
        base_url = local_url if _needs_local_emulator(service) else service.base_url
        tpm = entry.tokens_per_minute if endpoint.counts_tokens else None
        deployments.append(Deployment(entry.name, service, base_url or "", make_auth(service, credential),
                                      Pacer(entry.requests_per_minute, tpm,
                                            max_hold_s=spec.limits.max_retry_wait_s)))
    return Router(deployments)


def _ssl_context(spec: JobSpec) -> ssl.SSLContext | bool:
    if spec.service.ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=str(spec.service.ca_bundle))


async def _run_async(spec: JobSpec, options: RunOptions, plan: Preflight, out: Output,
                     control: RunControl | None = None) -> Job:
    job = Job(spec, options, plan, out)
    job.bind_loop()
    control = control or RunControl()
    control.attach(job)
    total_connections = spec.limits.concurrency * max(1, len(spec.deployments()))
    connector = aiohttp.TCPConnector(limit=total_connections, limit_per_host=spec.limits.concurrency,
                                     ttl_dns_cache=300, ssl=_ssl_context(spec))
    async with local_emulator(spec) as local_url, aiohttp.ClientSession(
            connector=connector, trust_env=False, headers={"User-Agent": USER_AGENT}) as session:
        router = build_router(spec, job.endpoint, local_url, options.credential)
        client = ServiceClient(spec, router, session, job.emit)
        job.files = OutputFiles(out.path, client.download)
        try:
            with _signals(job, options, control):
                await _drive(job, client, router)
        finally:
            job.close()
            for deployment in router.deployments:
                await deployment.auth.close()
    return job


async def _drive(job: Job, client: ServiceClient, router: Router) -> None:
    sizes = [d.pacer.max_request_tokens() for d in router.deployments]
    max_tokens = min((s for s in sizes if s), default=None)
    producer = asyncio.create_task(job.produce(max_tokens))
    workers = [asyncio.create_task(job.work(client)) for _ in range(job.spec.limits.concurrency)]
    flusher = asyncio.create_task(job.flush_loop())
    reporter = asyncio.create_task(_report_progress(job, router))
    try:
        await _wait_workers(job, workers)
        if not job.stopping.is_set():
            job.settle_refusals()  # the run ended before any success or a third like refusal decided
    finally:
        # Cancelling the flusher mid-write is safe: the write itself is shielded (on_writer_thread).
        for task in (producer, flusher, reporter, *workers):
            task.cancel()
        await asyncio.gather(producer, flusher, reporter, *workers, return_exceptions=True)
        await job.flush()


async def _report_progress(job: Job, router: Router) -> None:
    report = job.options.on_progress
    if report is None:
        return
    while True:
        await asyncio.sleep(job.options.progress_interval_s)
        report(job.stats, router.state())


async def _wait_workers(job: Job, workers: list[asyncio.Task[None]]) -> None:
    """Until every worker ends; after a stop, give in-flight requests a short deadline."""
    pending = set(workers)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED, timeout=0.2)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # a dead worker must never go unnoticed
        if job.stopping.is_set() and job.stop_code in (EXIT_ABORTED, EXIT_OUTPUT):
            return
        if job.stopping.is_set() and pending:
            await asyncio.wait(pending, timeout=job.options.drain_s)
            return


@contextlib.contextmanager
def _signals(job: Job, options: RunOptions, control: RunControl) -> Iterator[None]:
    """SIGINT/SIGTERM: stop taking rows and drain; a second signal stops at once."""
    if not options.handle_signals or threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers; run_job relays Ctrl-C from its caller instead
        return
    loop = asyncio.get_running_loop()
    for signum in EXIT_SIGNAL:
        loop.add_signal_handler(signum, control.on_loop, f"interrupted by {signum.name}", EXIT_SIGNAL[signum])
    try:
        yield
    finally:
        for signum in EXIT_SIGNAL:
            loop.remove_signal_handler(signum)


class RunControl:
    """Stops a run from another thread (run_job's caller, while the job runs on a thread of its own)."""

    def __init__(self) -> None:
        self._job: Job | None = None
        self._task: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._early: str | None = None  # a stop asked for before the job started
        self.cancelled = False

    def attach(self, job: Job) -> None:
        with self._lock:
            self._job, self._task = job, asyncio.current_task()
            early, self._early = self._early, None
        if early is not None:
            self.on_loop(early)

    def stop(self, reason: str) -> None:
        """Finish the requests in flight, then stop (as a first Ctrl-C does); a second call stops at once."""
        with self._lock:
            job = self._job
            if job is None:
                self._early = reason
                return
        assert job._loop is not None
        job._loop.call_soon_threadsafe(self.on_loop, reason)

    def on_loop(self, reason: str, code: int = 130) -> None:
        job = self._job
        assert job is not None
        if job.stopping.is_set() and job.stop_code in EXIT_SIGNAL.values():
            job.options.drain_s = 0
            self.cancelled = True
            if self._task is not None:
                self._task.cancel()
            return
        log.warning("%s: finishing requests in flight, then stopping (again to stop now)", reason)
        job.stop(code, f"{reason}; run again to resume")


def run_job(spec: JobSpec, options: RunOptions | None = None) -> RunResult:
    """Run a job to completion (or a stop) and return its exit code and summary.

    Works inside a running event loop too (Jupyter, async code): the job then runs on a thread of its
    own with its own loop, while this thread delivers its events and relays Ctrl-C as a clean stop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_job_async(spec, options))
    return _run_on_own_thread(spec, options or RunOptions())


async def run_job_async(spec: JobSpec, options: RunOptions | None = None,
                        control: RunControl | None = None) -> RunResult:
    """Run a job on the running event loop; callbacks in `options` are called on this loop's thread."""
    options = options or RunOptions()
    control = control or RunControl()
    try:
        return await _run_checked(spec, options, control)
    except asyncio.CancelledError:
        if control.cancelled:  # a second Ctrl-C, not the caller cancelling us
            raise PipelineError("stopped at once by a second interrupt; run again to resume") from None
        raise
    except Exception as exc:  # library callers get the same masked messages as the CLI prints
        exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
        raise


async def _run_checked(spec: JobSpec, options: RunOptions, control: RunControl) -> RunResult:
    install(options.crash_plan)
    plan = await asyncio.to_thread(preflight, spec, options.retry_failed)  # reads every id: off the loop
    out = plan.out
    warning = out.acquire_lock()
    if warning:
        log.warning("%s", warning)
    crash_point(CrashPoint.STARTUP)  # test hook: lock taken, no request sent yet
    started = now_iso()
    try:
        removed = out.remove_temp_files()
        if removed:
            log.info("removed %d unfinished temp file(s) left by an earlier run", removed)
        plan.check_fingerprint(options.force)
        if spec.service.mode == "batch":
            from pipeline.batch.engine import run_batch_job_async

            assert isinstance(out, OutputFolder)  # the spec refuses batch mode on a cloud output
            job = await run_batch_job_async(spec, options, plan, out, control)
        else:
            job = await _run_async(spec, options, plan, out, control)
        return _finish(job, started)
    finally:
        out.release_lock()


def _run_on_own_thread(spec: JobSpec, options: RunOptions) -> RunResult:
    """run_job called from a thread whose loop is running: run on another thread, relay events back."""
    import queue

    calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
    relayed = dataclasses.replace(
        options, handle_signals=False,
        on_event=(lambda kind, **data: calls.put(lambda: options.on_event(kind, **data)))  # type: ignore[misc]
        if options.on_event else None,
        on_progress=(lambda stats, state: calls.put(lambda: options.on_progress(stats, state)))  # type: ignore[misc]
        if options.on_progress else None)
    control = RunControl()
    outcome: list[RunResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(run_job_async(spec, relayed, control)))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)
        finally:
            calls.put(None)

    worker = threading.Thread(target=run, name="pipeline-job", daemon=True)
    worker.start()
    _relay(calls, control)
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _relay(calls: Any, control: RunControl) -> None:
    """Call the job's callbacks on this thread until it ends; Ctrl-C (a notebook's interrupt) stops it."""
    while True:
        try:
            call = calls.get()
        except KeyboardInterrupt:
            control.stop("interrupted")
            continue
        if call is None:
            return
        call()


def _finish(job: Job, started: str) -> RunResult:
    job.stats.ended = time.monotonic()
    summary = job.stats.summary()
    if job.prices is not None:
        summary["cost"] = {"amount": round(job.cost(), 6), "currency": "USD", "estimated": job.prices.estimated,
                           "prices": job.prices.source}
    code, message = _outcome(job)
    history = (job.out.read_job() or {}).get("runs", [])[-49:]
    history.append({"started": started, "ended": now_iso(), "exit_code": code, "summary": summary,
                    "message": message})
    job.out.write_job({
        "name": job.spec.name, "tool_version": __version__, "endpoint": job.spec.endpoint,
        "spec_file": str(job.spec.source_file), "fingerprint": job.spec.fingerprint(),
        "fingerprint_fields": job.spec.fingerprint_fields(), "runs": history, "last_summary": summary,
    })
    return RunResult(code, summary, job.out.path, redact(message) if message else None, job.stats)


def _outcome(job: Job) -> tuple[int, str | None]:
    """The exit code and message: a stop's own, else whether every row of the input is now done.

    The end-of-run check comes first: rows counted as answered that no part holds mean a write was
    lost, which must never pass as success (a rerun redoes them)."""
    results, failures = job.uncommitted()
    if results or failures:
        lost = f"{results} answered row(s) and {failures} failure row(s) this run counted were not committed"
        if job.stop_code in (EXIT_OUTPUT, EXIT_INTERNAL):
            return job.stop_code, f"{job.stop_message}; {lost}"
        return EXIT_INTERNAL, f"internal error: {lost}; run again to redo them (please report this)"
    if job.stop_code is not None:
        return job.stop_code, job.stop_message
    if job.stats.failed:
        return EXIT_ROWS_FAILED, None
    if job.stats.failed_earlier:
        return EXIT_ROWS_FAILED, (f"{job.stats.failed_earlier} row(s) failed in earlier runs and were not sent "
                                  "again; `pipeline failures` lists them, `pipeline run --retry-failed` retries them")
    return EXIT_OK, None
