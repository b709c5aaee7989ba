"""A 400 for the job, not for its rows: when the first answers are all the same refusal, stop.

An "API version not supported" or a parameter the deployment refuses is answered with the same 400 to
every request: failing the rows one by one (and splitting each embeddings batch down to single rows
to find the one to blame: 635 requests for 320 rows) helps no one. The evidence is the same refusal
(status, code, message) for SAME_REFUSALS requests whose rows are disjoint, before anything succeeded.
Disjoint, because halving a batch that holds one bad row refuses each half that still holds it: a chain
of ever smaller requests refused alike is one piece of evidence, two halves both refused are two.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.errors import APIError, APIStatusError, ContentFilterError, RequestTooLargeError

SAME_REFUSALS = 3
# Statuses that refuse a request for its content or its parameters, never for the moment (those are
# retried) and never the job's access (401/403/404 stop the job at once: online/job.py).
ROW_OR_JOB_STATUSES = frozenset({400, 405, 415, 422})

Key = tuple[int | None, str | None, str]


def could_be_job_wide(error: APIError) -> bool:
    """A refusal that the same answer to every request would make the job's: not a content filter, which
    is about one row's text however alike its messages, and not a request the quota can never fit."""
    return (isinstance(error, APIStatusError) and error.status in ROW_OR_JOB_STATUSES
            and not isinstance(error, ContentFilterError | RequestTooLargeError))


class SameRefusal:
    """Evidence, per refusal, of disjoint requests refused alike; cleared by the first success."""

    def __init__(self, needed: int = SAME_REFUSALS) -> None:
        self.needed = needed
        self._groups: dict[Key, list[frozenset[str]]] = {}

    def note(self, error: APIError, row_ids: Iterable[str]) -> bool:
        """Count this refusal; whether it is now the job's (the caller stops the run)."""
        if not could_be_job_wide(error):
            return False
        groups = self._groups.setdefault((error.status, error.code, error.message), [])
        ids = frozenset(row_ids)
        # A part of a request refused before stands in for it: smaller evidence, and disjoint from more.
        groups[:] = [group for group in groups if not ids <= group]
        if all(ids.isdisjoint(group) for group in groups):
            groups.append(ids)
        return len(groups) >= self.needed

    def clear(self) -> None:
        self._groups.clear()
