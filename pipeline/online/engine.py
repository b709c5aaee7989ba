"""The online engine's run: session, router and client around an OnlineJob, then the tasks that drive it.

    producer  the reader thread's rows -> the bounded queue (OnlineJob.produce)
    workers   N of them: queue -> request -> answers buffered (OnlineJob.work)
    flusher   commits the buffers as parts (Job.flush_loop)
    reporter  a progress line every progress_interval_s
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from pipeline.checkpoint import OutputFolder
from pipeline.client.deployment import Router
from pipeline.client.limiter import Pacing
from pipeline.client.service import ServiceClient
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunOptions
from pipeline.online.job import OnlineJob
from pipeline.online.router import build_router
from pipeline.preflight import Preflight
from pipeline.sinks.files import OutputFiles
from pipeline.spec import JobSpec
from pipeline.wiring.control import RunControl
from pipeline.wiring.emulator import local_emulator
from pipeline.wiring.session import http_session
from pipeline.wiring.signals import stop_on_signals

DNS_CACHE_S = 300  # many requests to few hosts: resolve them rarely


async def run_online_job(spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder,
                         control: RunControl | None = None, *, emulator_url: str | None = None,
                         pacers: Mapping[str, Pacing] | None = None) -> Job:
    """Run a job through the online API (called by runner, by the batch engine's online fallback, and for
    each shard of a job spread over workers: they share the driver's emulator and one pacer per deployment)."""
    job = OnlineJob(spec, options, plan, out)
    job.bind_loop()
    control = control or RunControl()
    control.attach(job)
    total_connections = spec.limits.concurrency * max(1, len(spec.deployments()))
    emulator = contextlib.nullcontext(emulator_url) if emulator_url else local_emulator(spec)
    async with emulator as local_url, http_session(
            spec, total_connections, spec.limits.concurrency, DNS_CACHE_S) as session:
        router = build_router(spec, job.endpoint, local_url, options.credential, pacers)
        client = ServiceClient(spec, router, session, job.emit, log_bodies=options.log_bodies)
        job.files = OutputFiles(out.path, client.download)
        try:
            with stop_on_signals(control, options.handle_signals):
                await _drive(job, client, router)
        finally:
            job.close()
            for deployment in router.deployments:
                await deployment.auth.close()
    return job


async def _drive(job: OnlineJob, client: ServiceClient, router: Router) -> None:
    sizes = [d.pacer.max_request_tokens() for d in router.deployments]
    max_tokens = min((s for s in sizes if s), default=None)
    if job.recordings is not None:  # chunks of recordings whose rows committed after the last cleanup
        await asyncio.to_thread(job.recordings.store.forget_done, job.plan.done)
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
        if await job.flush() and job.uncommitted() == (0, 0) and job.recordings is not None:
            await asyncio.to_thread(job.recordings.forget_committed)  # their rows are in results/ now


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
        if job.stopping.is_set() and job.stop_code in (ExitCode.ABORTED, ExitCode.OUTPUT):
            return
        if job.stopping.is_set() and pending:
            await asyncio.wait(pending, timeout=job.options.drain_s)
            return
