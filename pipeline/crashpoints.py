"""Test-only crash hooks: `PIPELINE_CRASH_AT=<point>:<n>[,<point>:<n>...]` kills the process the
n-th time the named point is reached, as hard as `kill -9` (no finally blocks, no flush, no cleanup).

Reliability tests use it to crash at exact places (a part written but not renamed, a 429 hold...).
Unset, `crash_point` costs one lookup in an empty dict.

Points: startup, runner.added, part.written, part.renamed, part.uploading (cloud), limiter.hold,
file.written.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_CRASH_AT"


def parse_plan(text: str) -> dict[str, int]:
    """`name:n,...` -> {name: n}; n defaults to 1. Malformed entries are ignored (a test hook, not input)."""
    plan: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, _, count = entry.partition(":")
        plan[name] = int(count) if count.isdigit() and int(count) > 0 else 1
    return plan


_plan: dict[str, int] = parse_plan(os.environ.get(ENV, ""))


def crash_point(name: str) -> None:
    """Die here on the planned visit; a no-op for every point not in the plan."""
    if name not in _plan:
        return
    _plan[name] -= 1
    if _plan[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
