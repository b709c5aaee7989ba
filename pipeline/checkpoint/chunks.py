"""Answered chunks of long recordings, kept until the recording's row commits.

A recording sent in chunks is one result row, written when its last chunk is answered. A crash before
that row commits must not cost the chunks already answered (an hour of audio is several paid requests),
so each chunk's parsed answer is committed as its own small object, `chunks/<id hash>/<start>-<end>.json`
(sample offsets at 16 kHz: the cutting is deterministic, so the rerun finds the same chunks). The row
commits as every row does; the chunk objects of rows that committed are deleted at the end of the run,
or by the next run when a crash came first. They are a cache of answers, never a second copy of a row:
results/ alone says what is done.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from pipeline.checkpoint.ids import IdSet, id_hash
from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.storage import StoragePath, content

FOLDER = "chunks"


@dataclass(frozen=True)
class SavedChunk:
    """A chunk's answer as it was committed. `split_s` instead of an answer: the service refused the chunk
    as too long or too large, and it was cut into chunks of at most that many seconds, saved under their own
    offsets (a rerun cuts it the same way and finds them)."""

    start: int
    end: int
    overlap: int
    request_id: str | None
    attempts: int
    latency_s: float
    result: dict[str, Any] | None
    split_s: float | None = None

    def to_json(self, row_id: str, plan: str) -> bytes:
        data = {"row_id": row_id, "plan": plan, "start": self.start, "end": self.end, "overlap": self.overlap,
                "request_id": self.request_id, "attempts": self.attempts, "latency_s": self.latency_s,
                "result": self.result, "split_s": self.split_s}
        return json.dumps(data, allow_nan=False).encode()


class RecordingChunks:
    """The saved chunks of one recording (one row)."""

    def __init__(self, folder: StoragePath, row_id: str, plan: str) -> None:
        self.folder = folder
        self.row_id = row_id
        self.plan = plan  # how it was cut (the chunk length): answers of another cut are not reused

    def load(self) -> dict[tuple[int, int], SavedChunk]:
        """The chunks saved by earlier runs, by (start, end). Saved under another plan or for another id (a
        hash collision): dropped. An object that does not parse is a leftover of nothing: ignored."""
        saved: dict[tuple[int, int], SavedChunk] = {}
        stale = False
        for file in self.folder.files():
            try:
                data = json.loads(file.read_all())
                chunk = SavedChunk(int(data["start"]), int(data["end"]), int(data["overlap"]), data["request_id"],
                                   int(data["attempts"]), float(data["latency_s"]), data["result"],
                                   _seconds(data.get("split_s")))
            except (ValueError, KeyError, TypeError):
                continue
            if data.get("row_id") != self.row_id or data.get("plan") != self.plan:
                stale = True
                continue
            saved[(chunk.start, chunk.end)] = chunk
        if stale and not saved:
            self.discard()
        return saved

    def save(self, chunk: SavedChunk) -> None:
        """Commit one chunk's answer whole (a crash leaves it or nothing). Blocking I/O: call off the loop."""
        name = f"{chunk.start:012d}-{chunk.end:012d}.json"
        (self.folder / name).commit(content(chunk.to_json(self.row_id, self.plan)))
        crash_point(CrashPoint.CHUNK_SAVED)  # test hook: a chunk answered and saved, the row not yet written

    def discard(self) -> None:
        for file in self.folder.files():
            file.delete()
        for leftover in self.folder.leftovers():
            leftover.delete()
        local = self.folder.local_path()
        if local is not None:  # object stores have no folders to leave behind
            with contextlib.suppress(OSError):
                local.rmdir()


class ChunkStore:
    """chunks/ under the output folder."""

    def __init__(self, output: StoragePath) -> None:
        self.folder = output / FOLDER

    def recording(self, row_id: str, plan: str) -> RecordingChunks:
        return RecordingChunks(self.folder / f"{id_hash(row_id):016x}", row_id, plan)

    def in_progress(self) -> dict[str, int]:
        """Saved chunks per recording not yet written as a row (its folder's name -> chunks answered)."""
        if not self.folder.exists():
            return {}
        counts: dict[str, int] = {}
        for relative in self.folder.walk_files():
            recording, _, name = relative.partition("/")
            if name.endswith(".json"):
                counts[recording] = counts.get(recording, 0) + 1
        return counts

    def forget_done(self, done: IdSet) -> int:
        """Delete the saved chunks of rows already in results/ (a crash came between the row's commit and
        this cleanup). Blocking I/O: call off the loop. Returns how many recordings were cleaned."""
        cleaned = 0
        if not self.folder.exists():
            return 0
        for relative in sorted({path.split("/")[0] for path in self.folder.walk_files()}):
            recording = self.folder / relative
            row_id = _row_id_of(recording)
            if row_id is not None and row_id in done:
                RecordingChunks(recording, row_id, "").discard()
                cleaned += 1
        return cleaned


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _row_id_of(recording: StoragePath) -> str | None:
    for file in recording.files():
        try:
            return str(json.loads(file.read_all())["row_id"])
        except (ValueError, KeyError, TypeError):
            continue
    return None
