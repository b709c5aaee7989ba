"""The run lock: one small object naming the run that holds it (pid, host, start time and a token).

On a disk the lock is created exclusively, so of two runs only one takes it. Object stores offer no
create-if-absent through pyarrow, so there it is best effort: a run writes its token and reads it back,
and only a run that reads another's token stops; two runs started within the same moment on the same
output can both go on. Run one job per output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from typing import Any

from pipeline.errors import PipelineError
from pipeline.redact import get_logger
from pipeline.storage import StorageError, StoragePath

log = get_logger("pipeline")


class LockHeld(PipelineError):
    """Another live run holds the job's lock."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunLock:
    """Takes and releases the lock object of one output."""

    def __init__(self, file: StoragePath, output: StoragePath) -> None:
        self.file = file
        self._output = output
        self._token = uuid.uuid4().hex  # which run wrote the lock: pids repeat across hosts and reboots

    def acquire(self) -> str | None:
        """Take the lock. Returns a warning when a dead holder's lock was taken over."""
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso(),
                           "token": self._token}).encode()
        warning: str | None = None
        for _ in range(2):  # a second try after removing a dead run's lock
            if self.file.create_exclusive(mine):
                return warning
            holder = self.holder()
            if holder is None:  # released since: try again
                continue
            if holder and _alive(holder):
                raise LockHeld(self._held_message(holder))
            warning = (f"took over a stale lock from pid {holder.get('pid', '?')} "
                       f"(started {holder.get('started', '?')}), which is no longer running")
            self.file.delete()
        raise LockHeld(f"{self.file}: could not take the lock")

    def holder(self) -> dict[str, Any] | None:
        """None when there is no lock; {} when it is unreadable (a write cut short: nobody holds it)."""
        data = self.file.read_or_none()
        if data is None:
            return None
        try:
            holder = json.loads(data or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def release(self) -> None:
        """Remove the lock if it is this run's. A failure is only a warning: the next run takes over a
        dead pid's lock."""
        try:
            holder = self.holder()
            if holder is None or holder.get("token") == self._token:
                self.file.delete()
        except StorageError as exc:
            log.warning("could not release the lock: %s", exc)

    def _held_message(self, holder: dict[str, Any]) -> str:
        return (f"{self._output}: another run holds the lock (pid {holder.get('pid')} on {holder.get('host')}, "
                f"started {holder.get('started')}); wait for it to finish, or delete {self.file} "
                "if that run is gone")


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the run that wrote the lock still runs; a lock from another host is assumed alive."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") not in (None, socket.gethostname()):
        return holder.get("host") not in (None, socket.gethostname())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
