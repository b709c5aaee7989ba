"""The output folder as a checkpoint: which ids are done, job.json, and the run lock.

A row is done when its id is in a closed part under results/ (or failures/, unless the
run retries failures or the row's latest failure was transient: see settled_failures). Only the
columns needed are read; ids are kept as sorted 64-bit hashes so a million done ids cost 8 MB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import PipelineError, is_transient_failure
from pipeline.redact import redact
from pipeline.sinks.parquet import OutputWriteError, closed_parts


class LockHeld(PipelineError):
    """Another live run holds the job's lock."""


def id_hash(row_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "little")


class IdSet:
    """Membership of ids by 64-bit hash (collision odds ~1e-8 at a million ids)."""

    def __init__(self, hashes: Iterable[int] = ()) -> None:
        self._sorted = np.unique(np.fromiter(hashes, dtype=np.uint64))

    @classmethod
    def union(cls, *sets: IdSet) -> IdSet:
        merged = cls()
        merged._sorted = np.unique(np.concatenate([s._sorted for s in sets])) if sets else merged._sorted
        return merged

    def without(self, other: IdSet) -> IdSet:
        """The ids in this set and not in `other`."""
        rest = IdSet()
        rest._sorted = np.setdiff1d(self._sorted, other._sorted, assume_unique=True)
        return rest

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, row_id: str) -> bool:
        if not len(self._sorted):
            return False
        key = np.uint64(id_hash(row_id))
        position = np.searchsorted(self._sorted, key)
        return bool(position < len(self._sorted) and self._sorted[position] == key)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class OutputFolder:
    """results/, failures/, job.json and lock under the job's output path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results = path / "results"
        self.failures = path / "failures"
        self.job_json = path / "job.json"
        self.lock_file = path / "lock"

    def prepare(self) -> None:
        try:
            for folder in (self.path, self.results, self.failures):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputWriteError(f"{self.path}: the output folder is not writable ({exc.strerror or exc}); "
                                   "fix [output] path or its permissions") from None

    def remove_temp_files(self) -> int:
        """Delete .tmp leftovers of a crashed run: they were never committed."""
        removed = 0
        for folder in (self.results, self.failures, self.path):
            if folder.is_dir():
                for leftover in folder.rglob("*.tmp"):
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed

    def ids_in(self, folder: Path) -> IdSet:
        return IdSet(id_hash(i) for i in iter_ids(folder))

    def settled_failures(self) -> IdSet:
        return settled_failure_ids(read_parts(self.failures, SETTLED_COLUMNS))

    # ---- job.json

    def read_job(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.job_json.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise PipelineError(f"{self.job_json}: unreadable ({exc}); move it aside to start over") from None

    def write_job(self, data: dict[str, Any]) -> None:
        temp = self.job_json.with_name("job.json.tmp")
        try:
            temp.write_text(redact(json.dumps(data, indent=2, sort_keys=True, default=str)))
            os.replace(temp, self.job_json)
        except OSError as exc:  # a full or read-only disk: exit 5 like a part, not an internal error
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise OutputWriteError(f"{self.job_json}: could not write ({exc.strerror or exc}); committed results "
                                   "are kept, free space or fix permissions and run again") from None

    # ---- lock

    def acquire_lock(self) -> str | None:
        """Take the run lock. Returns a warning when a dead holder's lock was taken over."""
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso()})
        warning: str | None = None
        for _ in range(2):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if holder and _alive(holder):
                    raise LockHeld(f"{self.path}: another run holds the lock (pid {holder.get('pid')}, "
                                   f"started {holder.get('started')}); wait for it to finish") from None
                self.lock_file.unlink(missing_ok=True)
                warning = (f"took over a stale lock from pid {holder.get('pid') if holder else '?'} "
                           f"(started {holder.get('started') if holder else '?'}), which is no longer running")
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(mine)
            return warning
        raise LockHeld(f"{self.lock_file}: could not take the lock")

    def _lock_holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.lock_file.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return None

    def release_lock(self) -> None:
        holder = self._lock_holder()
        if holder is None or holder.get("pid") == os.getpid():
            with contextlib.suppress(OSError):  # read-only disk: the next run takes over a dead pid's lock
                self.lock_file.unlink(missing_ok=True)


def _alive(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") not in (None, socket.gethostname()):
        return holder.get("host") not in (None, socket.gethostname())  # another host: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iter_ids(folder: Path) -> Iterable[str]:
    """The id column of every closed part in a dataset folder."""
    for table in read_parts(folder, ["id"]):
        yield from table.column("id").to_pylist()


def read_parts(folder: Path, columns: list[str]) -> Iterable[pa.Table]:
    """These columns of every closed part in a dataset folder, part by part, in commit order."""
    for part in closed_parts(folder):
        try:
            yield pq.read_table(part, columns=columns)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise PipelineError(f"{part}: cannot read this part ({exc}); it was not written by this tool "
                                "or the disk is damaged; move it aside and run again") from None


SETTLED_COLUMNS = ["id", "stage", "error_class", "status"]


def settled_failure_ids(tables: Iterable[pa.Table]) -> IdSet:
    """Ids whose latest failure row is the row's own (a refusal, a bad answer), not a transient one (the
    service unreachable, slow or out of quota: errors.is_transient_failure). Those a plain rerun skips;
    the others it sends again, so an outage never turns rows into failures that stay failed."""
    latest: dict[int, bool] = {}
    for table in tables:
        for row_id, stage, error_class, status in zip(*(table.column(c).to_pylist() for c in SETTLED_COLUMNS),
                                                      strict=True):
            latest[id_hash(row_id)] = not is_transient_failure(stage, error_class, status)
    return IdSet(key for key, settled in latest.items() if settled)
