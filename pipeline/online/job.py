"""OnlineJob: rows read on the reader thread into a bounded queue, sent by N workers, answers buffered.

A worker's request that the service refuses for its content is split down to the row to blame; a
refusal of the job itself (auth, a missing deployment, the same 400 for every first request) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.audio.errors import AudioDecodeError
from pipeline.checkpoint import OutputFolder
from pipeline.checkpoint.chunks import ChunkStore
from pipeline.client.concurrency import piece_size
from pipeline.client.service import ServiceClient
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunOptions
from pipeline.core.records import result_record
from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.endpoints.base import HttpResponse, Item, Request, RowError
from pipeline.endpoints.transcription import Transcription
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
    RequestTooLargeError,
    UnprocessableEntityError,
)
from pipeline.events import Done
from pipeline.jobwide import SameRefusal, could_be_job_wide

if TYPE_CHECKING:  # imported where a transcription job starts: PyAV costs every other job ~40 ms at start-up
    from pipeline.online.recordings import Answered, Recordings
from pipeline.preflight import Preflight
from pipeline.redact import get_logger, redact
from pipeline.sinks.files import OutputFiles
from pipeline.sinks.outputs import write_files
from pipeline.sinks.parquet import OutputWriteError
from pipeline.sources.base import Row
from pipeline.sources.reader import ReaderThread
from pipeline.spec import JobSpec
from pipeline.storage import StorageError

log = get_logger("pipeline")


@dataclass
class Answer:
    """What a request (or a recording's chunks) gave: one result per row."""

    results: list[dict[str, Any]]
    response: HttpResponse
    attempts: int
    recording: Answered | None = None


class OnlineJob(Job):
    """One run of a job through the online API."""

    def __init__(self, spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder) -> None:
        super().__init__(spec, options, plan, out)
        self.queue: asyncio.Queue[list[Item] | None] = asyncio.Queue(maxsize=max(2, spec.limits.concurrency * 2))
        self.any_success = False
        self.files: OutputFiles | None = None  # where endpoints that write files put them (set by the engine)
        self._same_refusal = SameRefusal()
        self._held_refusals: list[tuple[list[Row], APIError]] = []  # failed once known to be the rows'
        # Recordings too long or too big for one upload are sent in chunks (online/recordings.py).
        self.recordings: Recordings | None = None
        if isinstance(self.endpoint, Transcription):
            from pipeline.online.recordings import Recordings

            self.recordings = Recordings(self.endpoint, ChunkStore(out.path))

    # ---- producing work (on the reader thread: sources.reader)

    async def produce(self, max_request_tokens: int | None) -> None:
        """Fill the queue with batches, then one end marker per worker. Rows are read, counted, prepared and
        grouped on the reader thread: a slow disk or object store holds that thread, never the workers."""
        def batches() -> Iterator[list[Item]]:
            rows = self.as_counted(self.plan.source.rows())
            return self.endpoint.group(self.prepared(rows), max_request_tokens)

        reader: ReaderThread[list[Item] | None] = ReaderThread(self.queue)
        self.reader = reader
        try:
            if not await _unless_stopped(reader.run(batches), self.stopping):
                self._release_idle_workers()  # a stop: no more rows, even with a read still blocked
                return
        except (InputError, StorageError, OSError) as exc:  # the input broke mid-run: stop, exit 2
            self.stop(ExitCode.BAD_INPUT, str(exc))
            self._release_idle_workers()  # idle workers must not wait forever
            return
        except Exception as exc:  # a bug must stop the run, not leave the workers waiting for rows
            log.exception("unexpected error while reading the input")
            self.stop(ExitCode.INTERNAL, f"internal error while reading the input ({type(exc).__name__}: "
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
            answer = await self._answer(client, batch, request)
            if answer is None:
                return  # stopped in the middle of a recording: its answered chunks are saved for the next run
            if self.endpoint.writes_files and self.files is not None:
                answer.results = await write_files(self.endpoint, request, answer.results, self.files)
        except APIError as error:
            await self._on_refusal(client, batch, error)
            return
        except Exception as error:
            self._on_failure(batch, error)
            return
        self._on_first_success()
        await self.room_for(self.results)
        recording = answer.recording
        self._add_answers(batch, answer.results, answer.response, answer.attempts,
                          requests=recording.sent if recording is not None else 1)
        if recording is not None and self.recordings is not None:
            self.recordings.row_added(recording)

    def _on_failure(self, batch: list[Item], error: Exception) -> None:
        """A request that ended without an answer for a reason other than the service's refusal."""
        rows = [item.row for item in batch]
        if isinstance(error, OutputWriteError):
            self.stop(ExitCode.OUTPUT, str(error))
        elif isinstance(error, JobAborted):
            self.stop(ExitCode.ABORTED, str(error))
        elif isinstance(error, AudioDecodeError):  # a corrupt or truncated recording fails alone
            self.fail_rows(rows, RowError(f"{batch[0].payload.filename}: {error}"), "input")
        elif isinstance(error, FileNotFoundError):  # an input file removed after it was checked
            self.fail_rows(rows, RowError(f"{error.filename or 'the input file'} disappeared before it was sent; "
                                          "restore it and run again"), "input")
        else:  # a bug must cost a failure row, never a silently lost row
            log.error("unexpected error while processing rows %s", [row.id for row in rows[:3]], exc_info=error)
            self.fail_rows(rows, error, "internal")

    async def _answer(self, client: ServiceClient, batch: list[Item], request: Request) -> Answer | None:
        """One call's answers; for a recording the service cannot take whole, its chunks' answers stitched
        into one (None: the run stopped before its last chunk)."""
        if self.recordings is not None:
            (item,) = batch
            plan, source = await self.recordings.plan(item.payload)
            if plan.chunked:
                answered = await self.recordings.send(client, item, plan, source, self.stopping)
                if answered is None:
                    return None
                result = self.recordings.endpoint.stitch(answered.chunks)
                return Answer([result], answered.response(), answered.attempts, answered)
        results, response, attempts = await client.call(request, self.endpoint.parse)
        return Answer(results, response, attempts)

    def _add_answers(self, batch: list[Item], results: list[dict[str, Any]], response: HttpResponse,
                     attempts: int, requests: int = 1) -> None:
        """Buffer one result record per row of an answered request, and report what it cost."""
        latency_ms = round(response.latency_s * 1000, 2)
        for item, result in zip(batch, results, strict=True):
            self.results.add(result_record(item.row, result, request_id=response.request_id, attempts=attempts,
                                           latency_ms=latency_ms, deployment=response.deployment,
                                           keep=self.spec.output.keep))
        crash_point(CrashPoint.RUNNER_ADDED)  # test hook: answered, buffered, not yet committed
        usage = self.endpoint.usage(results)
        self.emit(Done(rows=len(batch), latency_s=response.latency_s, tokens_in=usage.tokens_in,
                       tokens_out=usage.tokens_out, images=usage.images, audio_seconds=usage.audio_seconds,
                       tokens_cached=usage.tokens_cached, tokens_reasoning=usage.tokens_reasoning,
                       requests=requests))
        self.note_added(self.results)

    async def _on_refusal(self, client: ServiceClient, batch: list[Item], error: APIError) -> None:
        """A request given up: the job's refusal stops the job, a batch blamed for its content is split,
        anything else fails its rows."""
        if self._refused_job_wide(batch, error):
            return
        if len(batch) > 1 and blames_content(error) and not self.stopping.is_set():
            await self._split(client, batch)
        else:
            self._on_api_error(batch, error)

    async def _split(self, client: ServiceClient, batch: list[Item]) -> None:
        """A batched request refused for its content: one row in it is bad, the others may be fine.
        Send each half on its own, down to the row to blame (log2(batch size) extra requests)."""
        half = len(batch) // 2
        await self._process(client, batch[:half])
        await self._process(client, batch[half:])

    def _on_api_error(self, batch: list[Item], error: APIError) -> None:
        if isinstance(error, AuthenticationError | PermissionDeniedError | InsufficientQuotaError) or (
                isinstance(error, NotFoundError) and not self.any_success):
            self.stop(ExitCode.ABORTED, abort_message(error, self.spec))
            return
        rows = [item.row for item in batch]
        if not self.any_success and could_be_job_wide(error):
            self._held_refusals.append((rows, error))  # failed once a success (or the end) shows it is theirs
            return
        self.fail_rows(rows, error, "request")

    def _refused_job_wide(self, batch: list[Item], error: APIError) -> bool:
        """The first answers are all the same refusal and nothing succeeded: stop the job with it (exit 3).
        The rows refused so far are not failed: a rerun after the fix sends them."""
        if self.any_success or not self._same_refusal.note(error, (item.row.id for item in batch)):
            return False
        self._held_refusals.clear()
        self.stop(ExitCode.ABORTED, f"the service refused the job: the first requests were all answered with the "
                  f"same error and none succeeded ({error}); check the spec (api_version, model or deployment, "
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
            self.fail_rows(rows, error, "request")


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


def blames_content(error: APIError) -> bool:
    """400, 413 and 422 refuse what was sent: with several rows in one request, maybe one row.
    An answer with more or fewer results than inputs is split too: the same request would get the
    same answer (retry.splits_instead keeps it from being retried), smaller ones may not."""
    if isinstance(error, AnswerCountError | RequestTooLargeError):
        return True
    return isinstance(error, BadRequestError | UnprocessableEntityError) or error.status == 413


def abort_message(error: APIError, spec: JobSpec) -> str:
    """Why the service refused the job as a whole, and what to check."""
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
