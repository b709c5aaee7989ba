"""Test-only crash hooks: a run whose options carry a CrashPlan kills its process the n-th time a named
point is reached, as hard as `kill -9` (no finally blocks, no flush, no cleanup).

Reliability tests use it to crash at exact places (a part written but not renamed, a 429 hold...).
The CLI builds the plan from `PIPELINE_CRASH_AT=<point>:<n>[,<point>:<n>...]` when it starts (never at
import); a library caller hands one in through RunOptions. An unknown point name is an error, not a
silent no-op. Without a plan, `crash_point` costs one attribute lookup.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Mapping

ENV = "PIPELINE_CRASH_AT"


class CrashPoint(enum.StrEnum):
    STARTUP = "startup"  # lock taken, no request sent yet
    RUNNER_ADDED = "runner.added"  # answered, buffered, not yet committed
    PART_WRITTEN = "part.written"  # a part's temp file written, not renamed
    PART_RENAMED = "part.renamed"  # a part renamed, its directory not yet fsynced
    PART_UPLOADING = "part.uploading"  # a cloud part being uploaded
    FILE_WRITTEN = "file.written"  # an output file's temp written, not renamed
    LIMITER_HOLD = "limiter.hold"  # every worker held by a 429
    CHUNK_SAVED = "chunk.saved"  # a long recording's chunk answered and saved, its row not yet written
    BATCH_UPLOADED = "batch.uploaded"  # batch mode: input uploaded and recorded, no batch yet
    BATCH_CREATED = "batch.created"  # batch mode: the batch exists but is not recorded
    BATCH_FLUSHED = "batch.flushed"  # batch mode: results committed, the batch not yet marked collected


class CrashPlan:
    """Which points kill the process, at which visit."""

    def __init__(self, visits: Mapping[CrashPoint, int]) -> None:
        self._left = dict(visits)

    @classmethod
    def parse(cls, text: str) -> CrashPlan:
        """`name:n,...` (n defaults to 1); ValueError naming the entry for an unknown point or a bad count."""
        visits: dict[CrashPoint, int] = {}
        for entry in filter(None, (e.strip() for e in text.split(","))):
            name, _, count = entry.partition(":")
            try:
                point = CrashPoint(name)
            except ValueError:
                known = ", ".join(p.value for p in CrashPoint)
                raise ValueError(f"{ENV}: unknown crash point {name!r} (known: {known})") from None
            if count and not (count.isdigit() and int(count) > 0):
                raise ValueError(f"{ENV}: {entry!r}: the visit count must be a positive whole number")
            visits[point] = int(count) if count else 1
        return cls(visits)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> CrashPlan | None:
        text = environ.get(ENV, "")
        return cls.parse(text) if text.strip() else None

    def visit(self, point: CrashPoint) -> None:
        if point not in self._left:
            return
        self._left[point] -= 1
        if self._left[point] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)


_active: CrashPlan | None = None


def install(plan: CrashPlan | None) -> None:
    """Arm `plan` for this process (the run that carries it); None disarms."""
    global _active
    _active = plan


def crash_point(point: CrashPoint) -> None:
    """Die here on the planned visit; a no-op without a plan or for a point not in it."""
    if _active is not None:
        _active.visit(CrashPoint(point))
