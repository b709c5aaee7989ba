"""The output folder's record of a job's batches: batches.json and the batches/ folder.

    batches.json                  {"version": 1, "batches": [BatchRecord, ...]}, replaced atomically
    batches/input-NNNNNN.jsonl    an input file, until the service has it
    batches/input-NNNNNN.ids.jsonl  its rows ({"id", "line", "keep"} per line), until it is collected

Collecting a batch finds its rows through a BatchIndex (about 17 bytes a row, the sidecar read
again only for a row's keep values or line), and the ids a run has written or must skip are held
as IdHashes (8 bytes an id): memory stays flat however many rows a batch or a run has.

A record goes written -> uploaded -> the service's statuses (validating, in_progress, finalizing,
completed | failed | expired | cancelled) -> collected. Every step is saved before the next one
starts, so a killed run knows which files were uploaded and which batches exist, and polls them
instead of sending the rows again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from pipeline.batch.lines import ids_name, input_name
from pipeline.checkpoint import id_hash, now_iso
from pipeline.errors import PipelineError
from pipeline.redact import get_logger

log = get_logger("pipeline.batch")

STATE_FILE = "batches.json"
FOLDER = "batches"
VERSION = 1
# "lost": the service no longer knows the batch (a restarted emulator, a deleted batch); its rows go again.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled", "lost"})


@dataclass
class BatchRecord:
    number: int
    lines: int
    bytes: int
    status: str = "written"
    file_id: str | None = None
    batch_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    turnaround_s: float | None = None  # created -> ended, as the service timed it
    collected: bool = False
    outcome: dict[str, int] = field(default_factory=dict)  # after collection: succeeded, failed, not_run
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class BatchBook:
    """Reads and writes one job's batches.json; knows where each batch's files live."""

    def __init__(self, output: Path) -> None:
        self.path = output / STATE_FILE
        self.folder = output / FOLDER
        self.records: list[BatchRecord] = _load(self.path)

    def save(self) -> None:
        """Replace batches.json whole: write a temp file, fsync, rename."""
        temp = self.path.with_name(STATE_FILE + ".tmp")
        data = {"version": VERSION, "batches": [dataclasses.asdict(r) for r in self.records]}
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def add(self, number: int, lines: int, size: int) -> BatchRecord:
        record = BatchRecord(number, lines, size)
        self.records.append(record)
        return record

    def open(self) -> list[BatchRecord]:
        """Batches not yet collected."""
        return [r for r in self.records if not r.collected]

    def next_number(self) -> int:
        return max((r.number for r in self.records), default=0) + 1

    def touch(self, record: BatchRecord) -> None:
        record.updated = now_iso()

    def input_path(self, record: BatchRecord) -> Path:
        return self.folder / input_name(record.number)

    def ids_path(self, record: BatchRecord) -> Path:
        return self.folder / ids_name(record.number)

    def entries(self, record: BatchRecord) -> Iterator[dict[str, Any]]:
        """The rows a batch holds, from its ids sidecar."""
        with open(self.ids_path(record), encoding="utf-8") as handle:
            for text in handle:
                yield json.loads(text)

    def open_ids(self) -> set[str]:
        """Ids of every row in a batch not yet collected (they must not be sent again)."""
        return {entry["id"] for record in self.open() for entry in self.entries(record)}

    def open_hashes(self) -> IdHashes:
        """open_ids() as IdHashes: what a run skips when it submits, in 8 bytes an id."""
        return IdHashes(id_hash(entry["id"]) for record in self.open() for entry in self.entries(record))

    def index(self, record: BatchRecord) -> BatchIndex:
        """The rows a batch holds, to look its output lines up in (close it, or use it in a with block)."""
        return BatchIndex(self.ids_path(record))

    def drop(self, record: BatchRecord) -> None:
        """Forget a record whose files are gone: its rows are sent again like any others."""
        self.records.remove(record)
        self.remove_files(record)

    def remove_files(self, record: BatchRecord) -> None:
        for path in (self.input_path(record), self.ids_path(record)):
            path.unlink(missing_ok=True)

    def remove_strays(self) -> int:
        """Delete files of batches no record names (written by a run killed before it saved the record)."""
        if not self.folder.is_dir():
            return 0
        known = {name for r in self.records for name in (input_name(r.number), ids_name(r.number))}
        strays = [p for p in self.folder.iterdir() if p.name not in known and p.name.startswith("input-")]
        for path in strays:
            path.unlink(missing_ok=True)
        return len(strays)


class IdHashes:
    """A set of ids held as their 64-bit checkpoint.id_hash, sorted: 8 bytes an id, where a set of str
    takes about 100. Exact for the ids of one input: preflight refuses an input two of whose ids
    share a hash (checkpoint.IdSet and the done ids rest on the same)."""

    def __init__(self, hashes: Iterable[int] | np.ndarray = ()) -> None:
        values = hashes if isinstance(hashes, np.ndarray) else np.fromiter(hashes, dtype=np.uint64)
        self._sorted = np.unique(values.astype(np.uint64, copy=False))

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, row_id: str) -> bool:
        return len(self._sorted) > 0 and self.has(id_hash(row_id))

    def has(self, key: int) -> bool:
        """Whether the id whose id_hash is `key` is in the set."""
        if not len(self._sorted):
            return False
        position = int(self._sorted.searchsorted(np.uint64(key)))
        return position < len(self._sorted) and int(self._sorted[position]) == key

    def has_each(self, keys: np.ndarray) -> np.ndarray:
        """`has` for an array of hashes at once: a bool array."""
        if not len(self._sorted) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        positions = np.minimum(self._sorted.searchsorted(keys), len(self._sorted) - 1)
        return np.asarray(self._sorted[positions] == keys)

    def union(self, hashes: np.ndarray) -> IdHashes:
        """A new set with these hashes added."""
        return IdHashes(np.concatenate([self._sorted, hashes.astype(np.uint64, copy=False)]))


class BatchIndex:
    """The rows one batch holds, found by id without holding the rows: the ids' hashes, sorted, each
    with the byte offset of its entry in the ids sidecar (read again only for a row whose keep values
    or line are needed), and a byte a row for whether an output line named it. About 17 bytes a row,
    where a dict of the entries took about 450. An id the sidecar repeats counts once, as an input's
    ids are unique."""

    def __init__(self, path: Path) -> None:
        self.path = path
        hashes, offsets = array("Q"), array("q")
        offset = 0
        with open(path, "rb") as handle:
            for raw in handle:
                hashes.append(id_hash(json.loads(raw)["id"]))
                offsets.append(offset)
                offset += len(raw)
        self.hashes, first = np.unique(np.frombuffer(hashes, dtype=np.uint64), return_index=True)
        self.offsets = np.frombuffer(offsets, dtype=np.int64)[first]
        self.seen = bytearray(len(self.hashes))  # 1: an output line of this row was read (or it was settled)
        self._handle: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, key: int) -> int:
        """The position of the row whose id_hash is `key`, or -1 when the batch holds no such row."""
        position = int(self.hashes.searchsorted(np.uint64(key)))
        return position if position < len(self.hashes) and int(self.hashes[position]) == key else -1

    def entry(self, position: int) -> dict[str, Any]:
        """The {"id", "line", "keep"} entry of the row at `position`, read from the sidecar."""
        if self._handle is None:
            self._handle = open(self.path, "rb")  # noqa: SIM115 -- closed by close()
        self._handle.seek(int(self.offsets[position]))
        entry: dict[str, Any] = json.loads(self._handle.readline())
        return entry

    def any_seen(self) -> bool:
        return any(self.seen)

    def seen_hashes(self) -> np.ndarray:
        return self.hashes[np.frombuffer(self.seen, dtype=np.uint8).astype(bool)]

    def unseen(self, skip: IdHashes) -> Iterator[tuple[int, dict[str, Any]]]:
        """(position, entry) of the rows no output line named and `skip` does not hold, in sidecar order."""
        wanted = ~np.frombuffer(self.seen, dtype=np.uint8).astype(bool) & ~skip.has_each(self.hashes)
        positions = np.flatnonzero(wanted)
        for position in positions[np.argsort(self.offsets[positions], kind="stable")].tolist():
            yield position, self.entry(position)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> BatchIndex:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _load(path: Path) -> list[BatchRecord]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable ({exc}); it names the batches this job started, so move it "
                            "aside only if those batches are to be forgotten") from None
    names = {f.name for f in dataclasses.fields(BatchRecord)}
    return [BatchRecord(**{k: v for k, v in item.items() if k in names}) for item in data.get("batches", [])]


def batch_summary(output: Path) -> list[dict[str, Any]]:
    """One entry per batch of the job in `output` (for `pipeline status`); empty for an online job."""
    return [{"number": r.number, "batch_id": r.batch_id, "status": "collected" if r.collected else r.status,
             "service_status": r.status, "lines": r.lines, "request_counts": r.request_counts,
             "outcome": r.outcome, "created": r.created, "updated": r.updated}
            for r in _load(output / STATE_FILE)]


def summary_lines(summary: list[dict[str, Any]]) -> list[str]:
    """`pipeline status` text for the batches: one line each."""
    lines = []
    for entry in summary:
        counts = entry["request_counts"] or {}
        done = f"{counts.get('completed', 0)}+{counts.get('failed', 0)} failed of " if counts else ""
        lines.append(f"  batch {entry['number']} {entry['batch_id'] or '(not created)'}: {entry['status']} "
                     f"({entry['service_status']}), {done}{entry['lines']} lines, updated {entry['updated']}")
    return lines
