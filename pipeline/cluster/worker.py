"""One shard of a job on a Ray worker: the same online engine as a local run, over the shard's rows only.

The shard reads what is done from the output at its start (so a retry after its worker died skips what
the dead attempt committed), writes parts under a name of its own attempt (part-<tag>-NNNNNN.parquet),
paces through the run's QuotaKeepers, posts its events to the board and follows the driver's orders.
It never takes the output's lock: the driver holds it for the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from pipeline.checkpoint import open_output
from pipeline.cluster.board import Order
from pipeline.cluster.quota import PacerView, SharedPacer
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunOptions
from pipeline.crashpoints import CrashPlan, install
from pipeline.endpoints import endpoint_for
from pipeline.events import Event
from pipeline.online.engine import run_online_job
from pipeline.preflight import Preflight, done_ids
from pipeline.sources import open_source
from pipeline.sources.shards import Shard, open_shard
from pipeline.spec import JobSpec
from pipeline.stats import RunStats
from pipeline.wiring.control import RunControl

POST_S = 0.3  # how often a worker posts its events and reads the driver's orders


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs for one shard (sent to it by Ray)."""

    spec: JobSpec
    shard: Shard
    keepers: dict[str, Any]  # deployment name -> QuotaKeeper actor handle
    views: dict[str, PacerView]
    board: Any  # the RunBoard actor handle
    emulator_url: str | None = None  # the driver's emulator, for provider = "emulator"
    environment: dict[str, str] = field(default_factory=dict)  # the driver's keys and storage settings
    retry_failed: bool = False
    limit: int | None = None  # this shard's share of --limit
    drain_s: float = 10.0
    log_bodies: bool = False
    crash_plan: CrashPlan | None = None  # test hook: armed on the first attempt only


@dataclass
class ShardReport:
    """How a shard's attempt ended: what the driver's summary and end-of-run check are made of."""

    index: int
    attempt: int
    stats: RunStats
    stop_code: ExitCode | None
    stop_message: str | None
    uncommitted: tuple[int, int]


def run_shard(task: ShardTask) -> ShardReport:
    """The Ray task's body: its own event loop, like a local run's."""
    os.environ.update(task.environment)
    return asyncio.run(_run_shard(task))


async def _run_shard(task: ShardTask) -> ShardReport:
    attempt: int = await task.board.started.remote(task.shard.index)
    install(task.crash_plan if attempt == 0 else None)
    tag = f"s{task.shard.index:03d}{secrets.token_hex(3)}"  # this attempt's own part names
    plan = await asyncio.to_thread(shard_preflight, task.spec, task.shard, task.retry_failed, tag)
    relay = EventRelay(task.board)
    options = RunOptions(retry_failed=task.retry_failed, limit=task.limit, drain_s=task.drain_s,
                         on_event=relay.add, log_bodies=task.log_bodies)
    control = RunControl()
    pacers = {name: SharedPacer(keeper, task.views[name]) for name, keeper in task.keepers.items()}
    posting = asyncio.create_task(relay.run(control))
    try:
        job = await run_online_job(task.spec, options, plan, plan.out, control, emulator_url=task.emulator_url,
                                   pacers=pacers)
    finally:
        posting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await posting
    await relay.post(control)  # the last events, before the report that ends the shard
    return ShardReport(task.shard.index, attempt, job.stats, job.stop_code, job.stop_message, job.uncommitted())


def shard_preflight(spec: JobSpec, shard: Shard, retry_failed: bool, tag: str) -> Preflight:
    """The shard's plan: its rows (the driver checked the whole input), and what is done now."""
    source = open_shard(open_source(spec.input, spec.output), shard)
    out = open_output(spec.output)
    done, failed_before = done_ids(out, retry_failed)
    return Preflight(spec, endpoint_for(spec), source, source.count(), out, done, failed_before, part_tag=tag)


class EventRelay:
    """A shard's events to the board every POST_S, and the driver's orders back to the shard's job."""

    def __init__(self, board: Any) -> None:
        self._board = board
        self._buffer: list[Event] = []
        self._seen = 0

    def add(self, event: Event) -> None:
        self._buffer.append(event)

    async def run(self, control: RunControl) -> None:
        while True:
            await asyncio.sleep(POST_S)
            await self.post(control)

    async def post(self, control: RunControl) -> None:
        events, self._buffer = self._buffer, []
        orders: list[Order] = await self._board.post.remote(events, self._seen)
        job = control.job
        if job is None:  # not started yet: the same orders come back with the next post
            return
        for order in orders:
            self._seen = order.serial
            _follow(order, job)


def _follow(order: Order, job: Job) -> None:
    if order.kind == "stop":
        job.stop(order.code, order.message)
    else:
        job.finish_early(order.code, order.message)
