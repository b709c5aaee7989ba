"""A run's options and its result: the public face of run_job (re-exported by pipeline.runner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.client.auth import TokenCredential
from pipeline.crashpoints import CrashPlan
from pipeline.events import EventSink
from pipeline.stats import RunStats
from pipeline.storage import StoragePath


@dataclass
class RunOptions:
    retry_failed: bool = False
    force: bool = False
    limit: int | None = None
    max_duration_s: float | None = None
    credential: TokenCredential | None = None
    handle_signals: bool = False
    drain_s: float = 10.0
    on_event: EventSink | None = None  # each event (pipeline/events.py), on the caller's thread
    on_progress: Callable[[RunStats, str], None] | None = None
    progress_interval_s: float = 30.0
    crash_plan: CrashPlan | None = None  # test hook: where to kill the process (crashpoints.py)
    log_bodies: bool = False  # at debug level, log request and response bodies too (`pipeline --log-bodies`)
    executor: Literal["local", "ray"] = "local"  # ray: the job's shards on a Ray cluster (pipeline/cluster)
    ray_address: str | None = None  # the cluster; None: RAY_ADDRESS, else one started on this machine for the run
    workers: int | None = None  # shards run side by side on the cluster; None: its CPUs


@dataclass
class RunResult:
    exit_code: int  # an ExitCode
    summary: dict[str, Any]
    output: StoragePath  # a pathlib.Path when local
    message: str | None = None
    stats: RunStats = field(default_factory=RunStats, repr=False)
