"""RunControl: stops a run from another thread, or from a signal handler on the run's loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pipeline.core.exitcodes import SIGNAL_EXIT, ExitCode
from pipeline.core.job import Job
from pipeline.redact import get_logger

log = get_logger("pipeline")


class RunControl:
    """Stops a run from another thread (run_job's caller, while the job runs on a thread of its own)."""

    def __init__(self) -> None:
        self._job: Job | None = None
        self._task: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._early: str | None = None  # a stop asked for before the job started
        self.cancelled = False

    def attach(self, job: Job) -> None:
        """The job to stop (called on its loop, by the task that runs it)."""
        with self._lock:
            self._job, self._task = job, asyncio.current_task()
            early, self._early = self._early, None
        if early is not None:
            self.on_loop(early)

    @property
    def job(self) -> Job | None:
        return self._job

    def stop(self, reason: str) -> None:
        """Finish the requests in flight, then stop (as a first Ctrl-C does); a second call stops at once."""
        with self._lock:
            job = self._job
            if job is None:
                self._early = reason
                return
        job.call_on_loop(self.on_loop, reason)

    def on_loop(self, reason: str, code: ExitCode = ExitCode.SIGINT) -> None:
        """The stop itself, on the job's loop: drain first; at once when a signal's stop is under way."""
        job = self._job
        assert job is not None
        if job.stopping.is_set() and job.stop_code in SIGNAL_EXIT.values():
            job.options.drain_s = 0
            self.cancelled = True
            if self._task is not None:
                self._task.cancel()
            return
        log.warning("%s: finishing requests in flight, then stopping (again to stop now)", reason)
        job.stop(code, f"{reason}; run again to resume")
