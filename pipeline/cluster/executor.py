"""The driver of a job spread over a Ray cluster: shards to workers, one quota, one summary.

    driver    preflight, the lock, job.json (pipeline/runner.py, as for a local run), then this module:
              cut the input into shards (sources/shards.py), start one QuotaKeeper per deployment and
              the RunBoard, run each shard as a Ray task (cluster/worker.py), and while they run drain
              the board into the run's stats (progress, on_event, budgets across all workers)
    workers   one shard each: the online engine, paced by the keepers (cluster/quota.py)

A worker that dies is retried by Ray (MAX_RETRIES); its retry skips what was committed, so every row still
ends up exactly once and a lost worker costs at most the rows it held uncommitted (one flush window and
the requests in flight). A shard that fails for good, or a stop (Ctrl-C, SIGTERM, a budget) is ordered
to every worker through the board; they finish what is in flight, commit and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any

from pipeline.checkpoint import OutputFolder
from pipeline.cluster.board import RunBoard
from pipeline.cluster.quota import QuotaKeeper
from pipeline.cluster.worker import ShardReport, ShardTask, run_shard
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunOptions
from pipeline.errors import InputError, SpecError
from pipeline.preflight import Preflight
from pipeline.redact import get_logger, redact
from pipeline.sources.shards import Shard, open_shard, plan_shards
from pipeline.spec import JobSpec
from pipeline.stats import RunStats
from pipeline.wiring.control import RunControl
from pipeline.wiring.emulator import local_emulator
from pipeline.wiring.signals import stop_on_signals

log = get_logger("pipeline")
MAX_RETRIES = 3  # attempts after a worker process died, per shard
WATCH_S = 0.2  # how often the driver drains the board
FORWARDED_PREFIXES = ("AZURE_", "AWS_", "OPENAI_")  # keys, Entra and storage settings the workers need
FORWARDED = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE",
             "REQUESTS_CA_BUNDLE")
SEVERITY = (ExitCode.OUTPUT, ExitCode.INTERNAL, ExitCode.ABORTED, ExitCode.SIGTERM, ExitCode.SIGINT, ExitCode.BUDGET)


class ClusterJob(Job):
    """The driver's view of the run: stats from the workers' events, the end-of-run check from their reports."""

    reports: dict[int, ShardReport]

    def uncommitted(self) -> tuple[int, int]:
        reports = self.reports.values()
        return sum(r.uncommitted[0] for r in reports), sum(r.uncommitted[1] for r in reports)


async def run_on_cluster(spec: JobSpec, options: RunOptions, plan: Preflight, out: OutputFolder,
                         control: RunControl) -> Job:
    """Run an online job's shards on Ray; returns the driver's ClusterJob for the runner to finish."""
    if spec.service.mode == "batch":
        raise SpecError(f"{spec.source_file}: --executor ray runs online jobs; mode = \"batch\" hands the work "
                        "to the Batch API already")
    if options.credential is not None:
        raise SpecError("--executor ray: a credential object cannot be sent to the workers; use auth = \"entra\" "
                        "with an identity on the cluster's nodes, or an API key in the environment")
    ray = await asyncio.to_thread(connect, options.ray_address)
    job = ClusterJob(spec, options, plan, out)
    job.reports = {}
    job.bind_loop()
    control.attach(job)
    workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    shards = await asyncio.to_thread(plan_shards, plan.source, plan.total, workers)
    limits = await asyncio.to_thread(limit_shares, plan, shards, options.limit)
    log.info("running %d shard(s) on Ray (%s)", len(shards), ray.get_runtime_context().gcs_address)
    async with local_emulator(spec) as emulator_url:
        run = ClusterRun(ray, job, shards)
        try:
            await run.start(emulator_url, limits)
            with stop_on_signals(control, options.handle_signals):
                await run.watch()
        finally:
            await run.close()
    job.stats = merged_stats(job.reports.values(), plan.total, job.stats.started)
    return job


def connect(address: str | None) -> Any:
    """Ray, connected: to `address`, else RAY_ADDRESS, else a cluster of this machine started for the run."""
    try:
        import ray
    except ImportError:
        raise SpecError("--executor ray: Ray is not installed; pip install 'aoai-pipeline[ray]'") from None
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        extra: dict[str, Any] = {} if address else {"include_dashboard": False}
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, **extra)
    return ray


def worker_environment(spec: JobSpec) -> dict[str, str]:
    """The driver's variables the workers need: API keys, Entra and storage settings, proxies."""
    named = {d.service.api_key_env for d in spec.deployments() if d.service.api_key_env}
    return {name: value for name, value in os.environ.items()
            if name in named or name in FORWARDED or name.startswith(FORWARDED_PREFIXES)}


class ClusterRun:
    """The actors and tasks of one run, and the driver's watch over them."""

    def __init__(self, ray: Any, job: ClusterJob, shards: list[Shard]) -> None:
        self.ray = ray
        self.job = job
        self.shards = {shard.index: shard for shard in shards}
        self.pending: dict[Any, int] = {}  # the shards' task refs
        self._last_order: tuple[str, ExitCode | None] | None = None
        self._last_progress = time.monotonic()
        self._states: dict[str, str] = {}
        spec = job.spec
        keeper_actor = ray.remote(QuotaKeeper).options(num_cpus=0, max_concurrency=10_000)
        self.keepers = {d.name: keeper_actor.remote(d.requests_per_minute,
                                                    d.tokens_per_minute if job.endpoint.counts_tokens else None,
                                                    spec.limits.max_retry_wait_s)
                        for d in spec.deployments()}
        self.board = ray.remote(RunBoard).options(num_cpus=0).remote()

    async def start(self, emulator_url: str | None, limits: dict[int, int | None]) -> None:
        """One task per shard, each with the whole job's spec but its share of the concurrency."""
        spec, options = self.job.spec, self.job.options
        shard_task = self.ray.remote(run_shard).options(max_retries=MAX_RETRIES, retry_exceptions=False)
        views = await asyncio.gather(*(keeper.view.remote() for keeper in self.keepers.values()))
        per_worker = dataclasses.replace(spec, limits=dataclasses.replace(
            spec.limits, concurrency=math.ceil(spec.limits.concurrency / len(self.shards))))
        for index, shard in self.shards.items():
            if limits[index] == 0:  # --limit is spent on the shards before it
                continue
            task = ShardTask(per_worker, shard, self.keepers, dict(zip(self.keepers, views, strict=True)),
                             self.board, emulator_url, worker_environment(spec), options.retry_failed,
                             limits[index], options.drain_s, options.log_bodies,
                             options.crash_plan if index == 0 else None)
            self.pending[shard_task.remote(task)] = index

    async def watch(self) -> None:
        """Until every shard has reported: events in, orders out, progress lines."""
        job = self.job
        waiting = {asyncio.wrap_future(ref.future()): ref for ref in self.pending}
        while waiting:
            done, _ = await asyncio.wait(waiting, timeout=WATCH_S, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                self._ended(self.pending.pop(waiting.pop(future)), future)
            await self._drain()
            job.sent_rows = job.stats.succeeded + job.stats.failed
            if job.over_budget() or job.stopping.is_set():
                self._order("stop" if job.stopping.is_set() else "finish")
            await self._report_progress()
        await self._drain()

    def _ended(self, index: int, future: asyncio.Future[ShardReport]) -> None:
        """A shard's last attempt ended: keep its report, or stop the run when it failed for good."""
        job, shard = self.job, self.shards[index]
        try:
            report = future.result()
        except Exception as exc:  # a worker that died MAX_RETRIES + 1 times, or a bug in the shard's code
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SpecError | InputError):  # a worker's one-line error (a key it lacks)
                job.stop(ExitCode.BAD_INPUT, f"{shard.describe()}: {cause}")
                return
            job.stop(ExitCode.INTERNAL, f"{shard.describe()} failed: {redact(_first_line(exc))}; the other "
                     "shards were stopped; committed rows are kept and a rerun resumes")
            return
        job.reports[index] = report
        if report.stop_code in (ExitCode.OUTPUT, ExitCode.INTERNAL, ExitCode.ABORTED):
            job.stop(report.stop_code, report.stop_message)
        elif report.stop_code is not None:
            job.finish_early(report.stop_code, report.stop_message)

    def _order(self, kind: str) -> None:
        """Post an order to every worker once (a stop after a finish is posted too)."""
        if self._last_order == (kind, self.job.stop_code):
            return
        self._last_order = (kind, self.job.stop_code)
        self.board.order.remote(kind, self.job.stop_code or ExitCode.SIGINT, self.job.stop_message)

    async def _drain(self) -> None:
        events = await self.board.drain.remote()
        for event in events:
            self.job.emit(event)

    async def _report_progress(self) -> None:
        report = self.job.options.on_progress
        if report is None or time.monotonic() - self._last_progress < self.job.options.progress_interval_s:
            return
        self._last_progress = time.monotonic()
        states = await asyncio.gather(*(k.report.remote() for k in self.keepers.values()))
        self._states = {name: s["state"] for name, s in zip(self.keepers, states, strict=True)}
        report(self.job.stats, self.state())

    def state(self) -> str:
        """The keepers' few words, as Router.state gives them for a local run."""
        if len(self._states) == 1:
            return next(iter(self._states.values()))
        return "; ".join(f"{name}: {state}" for name, state in self._states.items())

    async def close(self) -> None:
        """Cancel what still runs (a second Ctrl-C, a crash of the driver's loop), then end the actors."""
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        for actor in (*self.keepers.values(), self.board):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)


def limit_shares(plan: Preflight, shards: list[Shard], limit: int | None) -> dict[int, int | None]:
    """Each shard's part of --limit: the rows it has left, in shard order, until the limit is spent (so
    that the run does exactly `limit` new rows, as a local one would). Reads the input's ids once more."""
    if limit is None:
        return {shard.index: None for shard in shards}
    shares: dict[int, int | None] = {}
    for shard in shards:
        left = sum(1 for row_id, _ in open_shard(plan.source, shard).ids() if row_id not in plan.done)
        shares[shard.index] = min(left, limit)
        limit -= min(left, limit)
    return shares


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def merged_stats(reports: Iterable[ShardReport], total: int, started: float) -> RunStats:
    """The shards' own stats as one run's: each row once, as its last attempt counted it."""
    merged = RunStats(total=total, started=started)
    for report in reports:
        merged.merge(report.stats)
    return merged

