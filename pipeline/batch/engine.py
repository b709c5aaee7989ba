"""Batch mode's run: rows -> input files -> batches -> output lines -> results/ and failures/.

    submit   rows neither done nor in an open batch -> input files (split at the line and byte
             limits) -> upload -> create; each step saved in batches.json before the next
    poll     GET every open batch each poll_interval_s until one ends
    collect  download its output and error files -> endpoint.parse per line -> results/, failures/;
             rows the batch did not run (expired, cancelled, missing) go into a new batch, or to
             the online engine after the batches when fallback = "online"

BatchJob is a core Job (pipeline/core/job.py): it reuses the Job's part writers, events, budgets and
stop rules, so the summary, exit codes and job.json are those of online runs. The online engine the
fallback needs is handed in by the runner: the two engines never import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from pipeline.batch.api import BatchAPI
from pipeline.batch.book import BatchBook, BatchIndex, BatchRecord, IdHashes
from pipeline.batch.lines import (
    BatchFailedError,
    InputFile,
    InputFileWriter,
    LineOutcome,
    LineResponse,
    file_limits,
    input_line,
    line_body,
    read_output_line,
)
from pipeline.checkpoint import OutputFolder, id_hash
from pipeline.client.auth import make_auth
from pipeline.client.urls import batch_endpoint
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunOptions
from pipeline.core.records import failure_record, keep_value, result_record
from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.endpoints.base import Item, Request
from pipeline.errors import (
    APIError,
    AuthenticationError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
)
from pipeline.events import Done, Failed
from pipeline.preflight import Preflight
from pipeline.redact import get_logger
from pipeline.sinks.parquet import OutputWriteError
from pipeline.sources.base import Row, Source
from pipeline.spec import JobSpec
from pipeline.stats import RunStats
from pipeline.wiring.control import RunControl
from pipeline.wiring.emulator import local_emulator
from pipeline.wiring.session import http_session
from pipeline.wiring.signals import stop_on_signals

log = get_logger("pipeline.batch")
T = TypeVar("T")

BATCH_DISCOUNT = 0.5  # the Batch API's price against list prices (Azure global batch and OpenAI)
FLUSH_EVERY_LINES = 1000
BATCH_API_CONNECTIONS = 4  # uploads, polls and downloads: a few requests at a time

# The online engine, for the rows the batches did not run (fallback = "online"): the runner's choice.
OnlineEngine = Callable[[JobSpec, RunOptions, Preflight, OutputFolder, RunControl], Awaitable[Job]]


class BatchJob(Job):
    """One run of a job in batch mode."""

    def __init__(self, spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder) -> None:
        super().__init__(spec, options, plan, out)
        folder = out.path.local_path()
        assert folder is not None  # the spec refuses batch mode on a cloud output
        self.book = BatchBook(folder)
        self.url = batch_endpoint(spec.service, self.endpoint.op)
        self.written = IdHashes()  # ids this run committed to results or failures (8 bytes an id)
        self.not_run: set[str] = set()  # ids of ended batches that never ran: sent again (or online)
        self.online_stats: RunStats | None = None
        self.deployment = spec.deployments()[0].name  # the results' deployment column, as online runs fill it
        self._reported = float("-inf")
        # What the lines written to batch files may cost at most (prompt estimate, then max_tokens):
        # tokens are only known when a batch ends, so max_tokens and max_cost are held against this.
        self.planned_in = self.planned_out = 0
        self._out_per_line = _completion_ceiling(spec)

    def budget_reached(self) -> bool:
        """The Job's budgets, and max_tokens and max_cost held against what the lines written may cost."""
        if super().budget_reached():
            return True
        limits, planned = self.spec.limits, self.planned_in + self.planned_out
        if limits.max_tokens is not None and planned >= limits.max_tokens:
            return self.finish_early(ExitCode.BUDGET, f"stopped at max_tokens = {limits.max_tokens} (the batch "
                                     "lines written may use that many); run again to continue")
        if limits.max_cost is not None and self.prices is not None and self._planned_cost() >= limits.max_cost:
            return self.finish_early(ExitCode.BUDGET, f"stopped at max_cost = {limits.max_cost} (estimated for "
                                     "the batch lines written); run again to continue")
        return False

    def _plan(self, item: Item) -> None:
        out = min(self._out_per_line, item.tokens)
        self.planned_in += item.tokens - out
        self.planned_out += out

    def _planned_cost(self) -> float:
        assert self.prices is not None
        cost = self.prices.cost(self.planned_in, self.planned_out)
        return cost * (BATCH_DISCOUNT if self.prices.estimated else 1.0)

    def cost(self) -> float:
        """Batch lines at half the default list price; prices given in [pricing] are taken as they are."""
        if self.prices is None:
            return 0.0
        total, online = self.stats, self.online_stats or RunStats()
        batch = self.prices.cost(total.tokens_in - online.tokens_in, total.tokens_out - online.tokens_out,
                                 tokens_cached=total.tokens_cached - online.tokens_cached)
        return batch * (BATCH_DISCOUNT if self.prices.estimated else 1.0) + self.prices.cost(
            online.tokens_in, online.tokens_out, tokens_cached=online.tokens_cached)

    async def run(self, api: BatchAPI) -> None:
        """Submit, poll and collect until no batch is open (or a stop)."""
        try:
            strays = self.book.remove_strays()
            if strays:
                log.info("removed %d batch file(s) of a run killed before it recorded them", strays)
            await self._send_unsent(api)
            await self._submit(api, None)
            while not self.stopping.is_set() and self.book.open():
                for record in await self._poll(api):
                    await self._collect(api, record)  # even after a stop: an ended batch is quick to collect
                if self.not_run and self.spec.service.fallback == "resubmit" and not self.stopping.is_set():
                    await self._submit(api, self._take_not_run())
        except (AuthenticationError, PermissionDeniedError, NotFoundError) as error:
            self.stop(ExitCode.ABORTED, f"the service refused the batch API ({error}); check the key, base_url and "
                      "api_version, and that the deployment is a batch deployment")
        except APIError as error:
            self.stop(ExitCode.ABORTED, f"the batch API failed ({error}); batches already created keep running at "
                      "the service: run again to resume polling them")
        except OutputWriteError as error:
            self.stop(ExitCode.OUTPUT, str(error))

    def _take_not_run(self) -> set[str]:
        ids, self.not_run = self.not_run, set()
        self.sent_rows -= len(ids)  # they are counted again when sent again (--limit, max_rows)
        return ids

    # ---- submitting

    async def _submit(self, api: BatchAPI, only: set[str] | None) -> None:
        """Write input files for rows not done and in no open batch (or for `only`), then send them."""
        skip = self.book.open_hashes() if only is None else IdHashes()
        rows = (row for row in self.as_counted(self.plan.source.rows())
                if (row.id in only if only is not None else row.id not in skip))
        try:
            files = await self.on_writer_thread(self._write_inputs, rows)
        except InputError as exc:  # the input changed under the run (the files written are strays)
            self.stop(ExitCode.BAD_INPUT, str(exc))
            return
        records = [self.book.add(f.number, f.lines, f.bytes) for f in files]
        self.book.save()
        if records:
            log.info("%d input file(s) written with %d lines", len(records), sum(r.lines for r in records))
        for record in records:
            if self.stopping.is_set():
                return  # written but unsent: the next run sends them
            await self._send(api, record, look_first=False)

    def _write_inputs(self, rows: Iterable[Row]) -> list[InputFile]:
        """Lines for the rows (bad rows become failures on the way), split into files; runs in a thread."""
        writer = InputFileWriter(self.book.folder, self.book.next_number(), *file_limits(self.spec.service))
        files = []
        model = self.spec.service.model_name
        keep = self.spec.output.keep
        for item in self.prepared(iter(rows)):
            self._plan(item)
            body = line_body(self.endpoint.build([item]).json or {}, model)
            entry: dict[str, Any] = {"id": item.row.id, "line": item.row.line}
            if keep:
                entry["keep"] = {name: keep_value(item.row.fields.get(name)) for name in keep}
            closed = writer.add(entry, input_line(item.row.id, self.url, body))
            if closed is not None:
                files.append(closed)
        last = writer.close()
        return [*files, last] if last is not None else files

    async def _send_unsent(self, api: BatchAPI) -> None:
        """Records a killed run wrote or uploaded but did not see created: finish sending them."""
        for record in [r for r in self.book.open() if r.batch_id is None]:
            if record.file_id is None and not self.book.input_path(record).exists():
                log.warning("batch %d: its input file is gone; its rows will be sent again", record.number)
                self.book.drop(record)
                self.book.save()
                continue
            await self._send(api, record, look_first=True)

    async def _send(self, api: BatchAPI, record: BatchRecord, look_first: bool) -> None:
        if record.file_id is None:
            record.file_id = (await api.upload(self.book.input_path(record)))["id"]
            record.status = "uploaded"
            self._save(record)
            crash_point(CrashPoint.BATCH_UPLOADED)  # test hook: uploaded and recorded, no batch yet
        found = await api.find_for_file(record.file_id) if look_first else None
        self._update(record, found or await api.create(record.file_id, self.url))
        crash_point(CrashPoint.BATCH_CREATED)  # test hook: the batch exists but is not recorded
        self._save(record)
        self.book.input_path(record).unlink(missing_ok=True)  # the service has it; the ids sidecar stays
        log.info("batch %d: %s created with %d lines", record.number, record.batch_id, record.lines)

    # ---- polling

    async def _poll(self, api: BatchAPI) -> list[BatchRecord]:
        """GET every open batch each poll interval until at least one has ended."""
        while not self.stopping.is_set():
            for record in self.book.open():
                if not record.ended:
                    await self._refresh(api, record)
            self.book.save()
            self._report()
            ended = [r for r in self.book.open() if r.ended]
            if ended:
                return ended
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop(ExitCode.BUDGET, "stopped at --max-duration; the batches keep running at the service: "
                          "run again to collect them")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.spec.service.poll_interval_s)
        return []

    async def _refresh(self, api: BatchAPI, record: BatchRecord) -> None:
        assert record.batch_id is not None
        try:
            info = await api.get(record.batch_id)
        except NotFoundError:
            log.warning("batch %d: the service no longer knows %s; its rows will be sent again",
                        record.number, record.batch_id)
            record.status = "lost"
            return
        before = record.status
        self._update(record, info)
        if record.status != before:
            log.info("batch %d: %s -> %s %s", record.number, before, record.status, record.request_counts)

    def _update(self, record: BatchRecord, info: dict[str, Any]) -> None:
        record.batch_id = info.get("id") or record.batch_id
        record.status = str(info.get("status") or record.status)
        record.request_counts = {k: v for k, v in (info.get("request_counts") or {}).items() if isinstance(v, int)}
        record.output_file_id = info.get("output_file_id") or record.output_file_id
        record.error_file_id = info.get("error_file_id") or record.error_file_id
        record.errors = list((info.get("errors") or {}).get("data") or [])
        ended = next((info.get(f"{s}_at") for s in ("completed", "failed", "expired", "cancelled")
                      if info.get(f"{s}_at")), None)
        if isinstance(ended, int | float) and isinstance(info.get("created_at"), int | float):
            record.turnaround_s = float(ended - info["created_at"])
        self.book.touch(record)

    def _save(self, record: BatchRecord) -> None:
        self.book.touch(record)
        self.book.save()

    def _report(self) -> None:
        """A progress line at most every progress_interval_s, as online runs print them."""
        now = time.monotonic()
        if self.options.on_progress is None or now - self._reported < self.options.progress_interval_s:
            return
        self._reported = now
        states = Counter(r.status for r in self.book.open())
        self.options.on_progress(self.stats, "batches: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))

    # ---- collecting

    async def _collect(self, api: BatchAPI, record: BatchRecord) -> None:
        """Results and failures of an ended batch; its rows that did not run are noted to go again.

        Memory stays flat: the batch's rows are looked up in a BatchIndex (not held), the output and
        error files are streamed line by line from disk, and results go out in flush_rows parts."""
        outcome: Counter[str] = Counter()
        with self.book.index(record) as index:
            for file_id in (record.output_file_id, record.error_file_id):
                if file_id and record.status != "lost":
                    await self._read_file(api, record, file_id, index, outcome)
            ran = index.any_seen()
            # (position, id, line) of the rows no line named; the rows of a lost batch are all of them.
            missing = [(position, entry["id"], entry.get("line") or 0) for position, entry in
                       index.unseen(self.written) if entry["id"] not in self.plan.done]
            if self._settle_not_run(record, [(row_id, line) for _, row_id, line in missing], ran):
                for position, _, _ in missing:
                    index.seen[position] = 1  # failed with the batch's reason: written like the rest
            self.written = self.written.union(index.seen_hashes())
        if not await self.flush():
            return  # not committed: the batch stays uncollected and the next run collects it again
        crash_point(CrashPoint.BATCH_FLUSHED)  # test hook: results committed, the batch not yet marked collected
        record.collected = True
        record.outcome = {**outcome, "not_run": len(missing)}
        self._save(record)
        self.book.remove_files(record)
        await self._delete_remote(api, record)

    async def _read_file(self, api: BatchAPI, record: BatchRecord, file_id: str, index: BatchIndex,
                         outcome: Counter[str]) -> None:
        path = self.book.folder / f"download-{record.number:06d}.jsonl.tmp"
        await api.download(file_id, path)
        try:
            with open(path, "rb") as handle:  # noqa: ASYNC230 (batch mode: nothing else runs on the loop meanwhile)
                for count, raw in enumerate(handle, 1):
                    line = read_output_line(raw)
                    # Only the first line naming a row of ours that ran (a row that did not run goes again).
                    if line is not None and not line.not_run:
                        key = id_hash(line.custom_id)
                        position = index.find(key)
                        if position >= 0 and not index.seen[position]:
                            index.seen[position] = 1
                            if not self.written.has(key) and line.custom_id not in self.plan.done:
                                outcome[self._take_line(line, index, position, record)] += 1
                    if count % FLUSH_EVERY_LINES == 0:
                        await self.flush(only_due=True)
        finally:
            path.unlink(missing_ok=True)

    def _take_line(self, line: LineOutcome, index: BatchIndex, position: int, record: BatchRecord) -> str:
        """One output line -> a result or a failure row. Returns "succeeded" or "failed".

        The row's sidecar entry is read only when it is needed: for keep columns, or a failure's line."""
        keep = self.spec.output.keep
        entry = index.entry(position) if keep else None
        if line.error is not None:
            self._fail_line(_row(line.custom_id, entry or index.entry(position)), line.error)
            return "failed"
        row = Row(line.custom_id, (entry or {}).get("keep") or {}, (entry or {}).get("line") or 0)
        request = Request(self.endpoint.op, [Item(row, None)])
        response = LineResponse(line.status or 200, {}, b"", record.turnaround_s or 0.0, line.request_id,
                                parsed=line.body)
        try:
            (result,) = self.endpoint.parse(request, response)
        except APIError as error:
            self._fail_line(_row(line.custom_id, entry or index.entry(position)), error)
            return "failed"
        # The keep columns were made text when the line was written (keep_value leaves them as they are).
        self.results.add(result_record(row, result, request_id=line.request_id, attempts=1, latency_ms=None,
                                       deployment=self.deployment, keep=keep))
        usage = self.endpoint.usage([result])
        self.emit(Done(rows=1, latency_s=response.latency_s, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
                       tokens_cached=usage.tokens_cached, tokens_reasoning=usage.tokens_reasoning))
        return "succeeded"

    def _fail_line(self, row: Row, error: APIError) -> None:
        self.failures.add(failure_record(row, error, "request", attempts=1))
        self.emit(Failed(rows=1, code=error.code or type(error).__name__))

    def _settle_not_run(self, record: BatchRecord, rows: list[tuple[str, int]], ran: bool) -> bool:
        """Rows a batch did not run go again, unless nothing in it ran: then they fail with the batch's reason.
        `rows` are (id, line). Returns whether they failed (they are then written)."""
        if not rows:
            return False
        if ran or record.status == "lost" or self.spec.service.fallback == "online":
            log.info("batch %d (%s): %d row(s) did not run; they go again%s", record.number, record.status,
                     len(rows), " through the online API" if self.spec.service.fallback == "online" else "")
            self.not_run.update(row_id for row_id, _ in rows)
            return False
        # Sending again a batch of which nothing ran could loop for ever (a file the service refuses).
        first = record.errors[0] if record.errors else {}
        error = BatchFailedError(str(first.get("message") or f"the batch ended {record.status} with none of its "
                                     "lines run; run again with --retry-failed to send them again"),
                                 code=str(first.get("code") or f"batch_{record.status}"))
        for row_id, line in rows:
            self._fail_line(Row(row_id, {}, line), error)
        return True

    async def _delete_remote(self, api: BatchAPI, record: BatchRecord) -> None:
        """Free the service's file quota (500 files per Azure resource); a failure here loses nothing."""
        for file_id in (record.file_id, record.output_file_id, record.error_file_id):
            if file_id and record.status != "lost":
                try:
                    await api.delete_file(file_id)
                except APIError as error:
                    log.info("batch %d: could not delete file %s (%s)", record.number, file_id, error)

    # ---- online fallback

    async def run_online(self, control: RunControl, online: OnlineEngine) -> None:
        """Send the rows the batches did not run through the online engine (fallback = "online")."""
        ids, self.not_run = self.not_run, set()
        log.info("%d row(s) the batches did not run go to the online API", len(ids))
        plan = dataclasses.replace(self.plan, source=OnlyRows(self.plan.source, ids), total=len(ids))
        ran = await online(self.spec, dataclasses.replace(self.options, limit=None), plan, self.out, control)
        self._absorb(ran)

    def _absorb(self, online: Job) -> None:
        mine, theirs = self.stats, online.stats
        for name in ("succeeded", "failed", "requests", "tokens_in", "tokens_out", "throttled"):
            setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
        mine.retries.update(theirs.retries)
        mine.failures_by_code.update(theirs.failures_by_code)
        self.results.written += online.results.written  # what both committed, for the end-of-run check
        self.failures.written += online.failures.written
        self.online_stats = theirs
        if online.stop_code is not None:
            self.finish_early(online.stop_code, online.stop_message)


def _row(row_id: str, entry: dict[str, Any]) -> Row:
    """A row as a failure names it: its id and input line, from its sidecar entry."""
    return Row(row_id, {}, entry.get("line") or 0)


class OnlyRows:
    """A source narrowed to some ids: the rows the batches left for the online engine."""

    def __init__(self, source: Source, ids: set[str]) -> None:
        self.source = source
        self.wanted = ids
        self.path = source.path

    def rows(self) -> Iterator[Row]:
        return (row for row in self.source.rows() if row.id in self.wanted)

    def ids(self) -> Iterator[tuple[str, int]]:
        return ((i, line) for i, line in self.source.ids() if i in self.wanted)

    def count(self) -> int:
        return len(self.wanted)

    def columns(self) -> list[str] | None:
        return self.source.columns()


def _completion_ceiling(spec: JobSpec) -> int:
    """Completion tokens one line may use at most: max_tokens (or max_completion_tokens, max_output_tokens) times n."""
    params = spec.params
    ceiling = params.get("max_completion_tokens") or params.get("max_tokens") or params.get("max_output_tokens") or 0
    return int(ceiling) * int(params.get("n") or 1) if isinstance(ceiling, int) else 0


# --------------------------------------------------------------------------- entry point


async def run_batch_job_async(spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder,
                              control: RunControl, online: OnlineEngine) -> Job:
    """Run a job in batch mode (called by runner.run_job_async); returns the Job the runner summarises.
    `online` runs the rows the batches did not run, when the spec says fallback = "online"."""
    job = BatchJob(spec, options, plan, out)
    job.bind_loop()
    control.attach(job)
    auth = make_auth(spec.service, options.credential)

    async with local_emulator(spec) as local_url, http_session(spec, BATCH_API_CONNECTIONS) as session:
        api = BatchAPI(spec, local_url or spec.service.base_url or "", session, auth, job.emit, op=job.endpoint.op)
        try:
            with stop_on_signals(control, options.handle_signals):
                await job.run(api)
        finally:
            job.close()
        await auth.close()
    if job.not_run and job.stop_code is None and spec.service.fallback == "online":
        await job.run_online(control, online)
    return job
