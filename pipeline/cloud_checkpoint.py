"""The output folder as a checkpoint in object storage: the same layout and rules as `checkpoint.OutputFolder`.

results/ and failures/ hold whole parts (see sinks/cloud.py for how a part is committed); job.json is one
object rewritten whole; the lock is best effort. Object stores have no create-if-absent that pyarrow
exposes, so two runs started within the same second on the same output can both take the lock: each
writes its token, reads it back, and only a run that reads another's token stops. Run one job per output.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any, Protocol

from pipeline.checkpoint import (
    SETTLED_COLUMNS,
    IdSet,
    LockHeld,
    OutputFolder,
    _alive,
    id_hash,
    now_iso,
    settled_failure_ids,
)
from pipeline.errors import PipelineError
from pipeline.redact import get_logger, redact
from pipeline.sinks.cloud import closed_cloud_parts, read_cloud_parts, unfinished_cloud_parts
from pipeline.sinks.parquet import OutputWriteError
from pipeline.spec import OutputSpec
from pipeline.storage import Location, StorageError, first_line, locate

log = get_logger("pipeline")

def open_output(spec: OutputSpec) -> Output:
    """The checkpoint behind `[output] path`: a local folder, or a prefix in object storage."""
    return CloudOutputFolder(locate(spec.uri)) if spec.uri else OutputFolder(spec.path)


class CloudOutputFolder:
    """results/, failures/, job.json and lock under an object-storage prefix."""

    def __init__(self, location: Location) -> None:
        self.path = location
        self.results = location / "results"
        self.failures = location / "failures"
        self.job_json = location / "job.json"
        self.lock_file = location / "lock"
        self._token = uuid.uuid4().hex

    def prepare(self) -> None:
        """Fail early, in one line, on a missing container or refused credentials. Writing is tested by the
        lock, the first object a run writes (a separate probe would cost a write and a delete per run)."""
        container = self.path.container
        if not container.exists():
            raise StorageError(f"{self.path}: container or bucket {container.name!r} does not exist; create it "
                               "or fix [output] path")

    def remove_temp_files(self) -> int:
        """Delete what crashed uploads left (empty parts, .tmp objects): they were never committed."""
        leftovers = [*unfinished_cloud_parts(self.results), *unfinished_cloud_parts(self.failures)]
        for leftover in leftovers:
            leftover.delete()
        return len(leftovers)

    def ids_in(self, folder: Location) -> IdSet:
        """The id column of every closed part, and nothing else."""
        tables = read_cloud_parts(closed_cloud_parts(folder), columns=["id"])
        return IdSet(id_hash(i) for table in tables for i in table.column("id").to_pylist())

    def settled_failures(self) -> IdSet:
        return settled_failure_ids(read_cloud_parts(closed_cloud_parts(self.failures), columns=SETTLED_COLUMNS))

    # ---- job.json

    def read_job(self) -> dict[str, Any] | None:
        data = self.job_json.read_bytes()
        if not data:  # absent, or the empty object of an upload a crash cut short
            return None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PipelineError(f"{self.job_json}: unreadable ({exc}); move it aside to start over") from None

    def write_job(self, data: dict[str, Any]) -> None:
        text = redact(json.dumps(data, indent=2, sort_keys=True, default=str))
        try:
            self.job_json.write_bytes(text.encode())
        except OSError as exc:
            raise OutputWriteError(f"{self.job_json}: could not write ({first_line(exc)}); committed results "
                                   "are kept, run again") from None

    # ---- lock (best effort: see the module docstring)

    def acquire_lock(self) -> str | None:
        """Take the run lock. Returns a warning when a dead holder's lock was taken over."""
        holder = self._lock_holder()
        warning = None
        if holder is not None:
            if holder and _alive(holder):
                raise LockHeld(self._held_message(holder))
            warning = (f"took over a stale lock from pid {holder.get('pid', '?')} "
                       f"(started {holder.get('started', '?')}), which is no longer running")
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso(), "token": self._token}
        try:
            self.lock_file.write_bytes(json.dumps(mine).encode())
        except OSError as exc:
            raise StorageError(f"{self.path}: the output is not writable ({first_line(exc)}); check the "
                               "credentials' role (e.g. Storage Blob Data Contributor) or fix [output] path") from None
        holder = self._lock_holder()
        if not holder or holder.get("token") != self._token:
            raise LockHeld(self._held_message(holder or {}))
        return warning

    def _held_message(self, holder: dict[str, Any]) -> str:
        return (f"{self.path}: another run holds the lock (pid {holder.get('pid')} on {holder.get('host')}, "
                f"started {holder.get('started')}); wait for it to finish, or delete {self.lock_file} "
                "if that run is gone")

    def _lock_holder(self) -> dict[str, Any] | None:
        """None when there is no lock; {} when it is unreadable (an upload cut short: nobody holds it)."""
        data = self.lock_file.read_bytes()
        if data is None:
            return None
        try:
            holder = json.loads(data or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def release_lock(self) -> None:
        try:
            holder = self._lock_holder()
            if holder is None or holder.get("token") == self._token:
                self.lock_file.delete()
        except StorageError as exc:  # the next run takes over a dead pid's lock
            log.warning("could not release the lock: %s", exc)


class Output(Protocol):
    """A checkpoint as preflight, the runner and reports use it: `OutputFolder` or `CloudOutputFolder`.

    The folders are a Path for a local output and a Location in object storage; each class's own
    methods take its own kind, so they are typed Any here rather than as a union mypy cannot pair up."""

    path: Any
    results: Any
    failures: Any
    job_json: Any
    lock_file: Any

    def prepare(self) -> None: ...

    def remove_temp_files(self) -> int: ...

    def ids_in(self, folder: Any) -> IdSet: ...

    def settled_failures(self) -> IdSet:
        """Failed ids a plain rerun skips: those whose latest failure was not transient."""

    def read_job(self) -> dict[str, Any] | None: ...

    def write_job(self, data: dict[str, Any]) -> None: ...

    def acquire_lock(self) -> str | None: ...

    def release_lock(self) -> None: ...
