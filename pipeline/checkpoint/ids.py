"""Done ids as sorted 64-bit hashes, so a million of them cost 8 MB, and which failed ids are settled."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from pipeline.errors import is_transient_failure

SETTLED_COLUMNS = ["id", "stage", "error_class", "status", "failed_at"]


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


def ids_of(tables: Iterable[pa.Table]) -> IdSet:
    """The ids in the `id` column of these tables."""
    return IdSet(id_hash(i) for table in tables for i in table.column("id").to_pylist())


def settled_failure_ids(tables: Iterable[pa.Table]) -> IdSet:
    """Ids whose latest failure row is the row's own (a refusal, a bad answer), not a transient one (the
    service unreachable, slow or out of quota: errors.is_transient_failure). Those a plain rerun skips;
    the others it sends again, so an outage never turns rows into failures that stay failed.
    "Latest" is by failed_at, then by part: the parts of workers of one run (part-<tag>-N) do not sort
    in the order they were committed."""
    latest: dict[int, tuple[str, bool]] = {}
    for table in tables:
        for row_id, stage, error_class, status, failed_at in zip(
                *(table.column(c).to_pylist() for c in SETTLED_COLUMNS), strict=True):
            key, when = id_hash(row_id), failed_at or ""
            if key not in latest or when >= latest[key][0]:
                latest[key] = (when, not is_transient_failure(stage, error_class, status))
    return IdSet(key for key, (_, settled) in latest.items() if settled)
