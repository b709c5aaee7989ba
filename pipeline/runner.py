"""Runs one job: checks it (preflight, lock, fingerprint), hands it to its engine, records how it ended.

    online  pipeline/online: rows -> bounded queue -> N workers -> results/ and failures/
    batch   pipeline/batch: rows -> batch files -> the Batch API -> results/ and failures/

Both engines build on pipeline/core (the Job, records, exit codes) and pipeline/wiring (session, signals,
RunControl); this module is the only one that knows both. It also runs a job for a caller whose event
loop is already running (a notebook), on a thread of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
from collections.abc import Callable

from pipeline.batch.engine import run_batch_job_async
from pipeline.checkpoint import now_iso
from pipeline.core.history import finish
from pipeline.core.options import RunOptions, RunResult
from pipeline.crashpoints import CrashPoint, crash_point, install
from pipeline.errors import PipelineError
from pipeline.events import Event
from pipeline.online.engine import run_online_job
from pipeline.online.router import build_router
from pipeline.preflight import preflight
from pipeline.redact import get_logger, redact
from pipeline.spec import JobSpec
from pipeline.stats import RunStats
from pipeline.wiring.control import RunControl

__all__ = ["RunControl", "RunOptions", "RunResult", "build_router", "run_job", "run_job_async"]

log = get_logger("pipeline")

Relayed = queue.SimpleQueue[Callable[[], None] | None]  # callbacks for the caller's thread; None: the end


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
    """Preflight, take the output's lock, run the job on its engine, and record the run in job.json."""
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
        if options.executor == "ray":
            from pipeline.cluster.executor import run_on_cluster  # Ray is an optional extra

            job = await run_on_cluster(spec, options, plan, out, control)
        elif spec.service.mode == "batch":
            job = await run_batch_job_async(spec, options, plan, out, control, online=run_online_job)
        else:
            job = await run_online_job(spec, options, plan, out, control)
        return finish(job, started)
    finally:
        out.release_lock()


def _run_on_own_thread(spec: JobSpec, options: RunOptions) -> RunResult:
    """run_job called from a thread whose loop is running: run on another thread, relay events back."""
    calls: Relayed = queue.SimpleQueue()
    relayed = dataclasses.replace(options, handle_signals=False, on_event=_relay_events(options, calls),
                                  on_progress=_relay_progress(options, calls))
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


def _relay_events(options: RunOptions, calls: Relayed) -> Callable[[Event], None] | None:
    """The caller's on_event, called on the caller's thread (put on `calls` by the job's)."""
    on_event = options.on_event
    if on_event is None:
        return None
    return lambda event: calls.put(lambda: on_event(event))


def _relay_progress(options: RunOptions, calls: Relayed) -> Callable[[RunStats, str], None] | None:
    """The caller's on_progress, called on the caller's thread."""
    on_progress = options.on_progress
    if on_progress is None:
        return None
    return lambda stats, state: calls.put(lambda: on_progress(stats, state))


def _relay(calls: Relayed, control: RunControl) -> None:
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
