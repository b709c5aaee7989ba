"""The output folder as a checkpoint: which ids are done, job.json, and the run lock, on a disk or in
object storage alike.

A row is done when its id is in a closed part under results/ (or failures/, unless the run retries
failures or the row's latest failure was transient: see settled_failures). Only the columns needed are
read. job.json is one object committed whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.checkpoint.ids import SETTLED_COLUMNS, IdSet, ids_of, settled_failure_ids
from pipeline.checkpoint.lock import RunLock
from pipeline.errors import PipelineError
from pipeline.redact import redact
from pipeline.sinks.parquet import read_parts
from pipeline.spec import OutputSpec
from pipeline.storage import StoragePath, as_storage, content, locate


def open_output(spec: OutputSpec) -> OutputFolder:
    """The checkpoint behind `[output] path`: a local folder, or a prefix in object storage."""
    return OutputFolder(locate(spec.uri) if spec.uri else spec.path)


class OutputFolder:
    """results/, failures/, job.json and lock under the job's output path."""

    def __init__(self, where: Path | StoragePath) -> None:
        self.path = as_storage(where)
        self.results = self.path / "results"
        self.failures = self.path / "failures"
        self.job_json = self.path / "job.json"
        self.lock_file = self.path / "lock"
        self._lock = RunLock(self.lock_file, self.path)

    def prepare(self) -> None:
        """Fail before the first request when the output cannot be written, and make its folders."""
        self.path.check_writable()
        for folder in (self.results, self.failures):
            folder.make_folder()

    def remove_temp_files(self) -> int:
        """Delete what crashed commits left (.tmp files, empty uploads): they were never committed."""
        removed = 0
        for folder in (self.results, self.failures, self.path):
            for leftover in folder.leftovers():
                leftover.delete()
                removed += 1
        return removed

    def ids_in(self, folder: StoragePath) -> IdSet:
        """The id column of every closed part, and nothing else."""
        return ids_of(read_parts(folder, ["id"]))

    def settled_failures(self) -> IdSet:
        """Failed ids a plain rerun skips: those whose latest failure was not transient."""
        return settled_failure_ids(read_parts(self.failures, SETTLED_COLUMNS))

    # ---- job.json

    def read_job(self) -> dict[str, Any] | None:
        data = self.job_json.read_or_none()
        if not data:  # absent, or the empty object of an upload a crash cut short
            return None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PipelineError(f"{self.job_json}: unreadable ({exc}); move it aside to start over") from None

    def write_job(self, data: dict[str, Any]) -> None:
        """Committed whole, like a part: a crash leaves the previous job.json or the new one."""
        self.job_json.commit(content(redact(json.dumps(data, indent=2, sort_keys=True, default=str)).encode()))

    # ---- lock

    def acquire_lock(self) -> str | None:
        """Take the run lock. Returns a warning when a dead holder's lock was taken over."""
        return self._lock.acquire()

    def release_lock(self) -> None:
        self._lock.release()
