"""One transcript from the answers for a recording's chunks.

Chunks are cut in silences where there are any (they then meet at one instant) and otherwise overlap by
a second. Each chunk's times are offset by its start; where two chunks overlap, the join is the middle of
the overlap: a segment (or word) belongs to the chunk holding its midpoint on its side of the join, so
speech heard by both is kept once. Answers without timings (json, text) are joined as text, dropping the
words the next chunk repeats from the previous one's end. Segments are renumbered from 0.

Speaker labels of diarized chunks are mapped to labels for the whole recording (`speaker_map`): the
chunk's own labels are consistent with the recording's only where the chunk was sent with known-speaker
references (the engine sends them for the speakers heard so far); a label it did not know gets a new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.endpoints.subtitles import Cue, parse_cues, to_srt, to_vtt

MAX_REPEAT_WORDS = 40  # the longest run of words an overlap of a second or two can repeat


@dataclass(frozen=True)
class ChunkAnswer:
    """A chunk's parsed answer (Transcription.parse_answer's dict) and where the chunk lies in the file."""

    start_s: float
    end_s: float
    overlap_s: float  # seconds at its start that the previous chunk also holds
    result: dict[str, Any]
    request_id: str | None = None
    speaker_map: dict[str, str] = field(default_factory=dict)  # the chunk's label -> the recording's label


def joins(chunks: list[ChunkAnswer]) -> list[float]:
    """Where chunk k hands over to chunk k+1, in the file's seconds."""
    return [nxt.start_s + nxt.overlap_s / 2 for nxt in chunks[1:]]


def stitch(chunks: list[ChunkAnswer], fmt: str) -> dict[str, Any]:
    """The whole recording's result, in the same columns a single answer has."""
    bounds = joins(chunks)
    segments = _stitched_timings(chunks, bounds, "segments")
    words = _stitched_timings(chunks, bounds, "words")
    cues = _stitched_cues(chunks, bounds) if fmt in ("srt", "vtt") else None
    if segments is not None:
        text = " ".join(s["text"] for s in segments if s["text"])
    elif cues is not None:
        text = " ".join(c.text for c in cues)
    else:
        text = join_texts([c.result.get("text") or "" for c in chunks], [c.overlap_s > 0 for c in chunks[1:]])
    result: dict[str, Any] = {
        "text": text,
        "language": next((c.result["language"] for c in chunks if c.result.get("language")), None),
        "duration": round(chunks[-1].end_s, 3) if chunks else None,
        "segments": segments,
        "words": words,
        "chunks": len(chunks),
        "chunk_request_ids": [c.request_id or "" for c in chunks],
    }
    if cues is not None:
        result["subtitles"] = to_srt(cues) if fmt == "srt" else to_vtt(cues)
    return result


def _stitched_timings(chunks: list[ChunkAnswer], bounds: list[float], key: str) -> list[dict[str, Any]] | None:
    if any(c.result.get(key) is None for c in chunks):
        return None
    kept: list[dict[str, Any]] = []
    for index, chunk in enumerate(chunks):
        low = bounds[index - 1] if index else float("-inf")
        high = bounds[index] if index < len(bounds) else float("inf")
        mine = [moved for moved in (_offset(timed, chunk) for timed in chunk.result[key])
                if low <= (moved["start"] + moved["end"]) / 2 < high]
        if key == "segments" and index and chunk.overlap_s and kept and mine:
            _merge_cut_segment(kept, mine, chunk)
        kept.extend(mine)
    if key == "segments":
        for number, segment in enumerate(kept):
            segment["id"] = number
    return kept


def _merge_cut_segment(kept: list[dict[str, Any]], mine: list[dict[str, Any]], chunk: ChunkAnswer) -> None:
    """A cut without a pause falls inside speech: the previous chunk's last segment runs into the overlap and
    this chunk's first one starts in it. They are one utterance heard in two halves: one segment, its words
    said twice in the overlap kept once."""
    last, first = kept[-1], mine[0]
    overlap_end = chunk.start_s + chunk.overlap_s
    if last["end"] > chunk.start_s and first["start"] < overlap_end:
        last["end"] = first["end"]
        last["text"] = join_texts([last["text"], first["text"]], [True])
        mine.pop(0)


def _offset(timed: dict[str, Any], chunk: ChunkAnswer) -> dict[str, Any]:
    moved = dict(timed)
    moved["start"] = round(timed["start"] + chunk.start_s, 3)
    moved["end"] = round(timed["end"] + chunk.start_s, 3)
    if moved.get("speaker") is not None:
        moved["speaker"] = chunk.speaker_map.get(moved["speaker"], moved["speaker"])
    return moved


def _stitched_cues(chunks: list[ChunkAnswer], bounds: list[float]) -> list[Cue]:
    as_segments = [ChunkAnswer(c.start_s, c.end_s, c.overlap_s,
                               {"segments": [{"start": q.start, "end": q.end, "text": q.text}
                                             for q in parse_cues(c.result.get("subtitles") or "")]})
                   for c in chunks]
    kept = _stitched_timings(as_segments, bounds, "segments") or []
    return [Cue(s["start"], s["end"], s["text"]) for s in kept]


def join_texts(texts: list[str], overlapped: Iterable[bool]) -> str:
    """Chunk texts in order; after an overlapping cut, the words the next text repeats are dropped."""
    if not texts:
        return ""
    joined = texts[0].split()
    for text, overlap in zip(texts[1:], overlapped, strict=True):
        words = text.split()
        if overlap:
            words = words[repeated_words(joined, words):]
        joined.extend(words)
    return " ".join(joined)


def repeated_words(before: list[str], after: list[str]) -> int:
    """The longest run of words that ends `before` and starts `after` (compared without punctuation/case)."""
    def norm(word: str) -> str:
        return word.strip(".,;:!?\"'").lower()

    tail = [norm(w) for w in before[-MAX_REPEAT_WORDS:]]
    head = [norm(w) for w in after[:MAX_REPEAT_WORDS]]
    for size in range(min(len(tail), len(head)), 0, -1):
        if tail[-size:] == head[:size]:
            return size
    return 0


def prompt_tail(text: str, words: int = 40) -> str:
    """The end of a transcript, as the next chunk's prompt (Whisper reads only its last 224 tokens)."""
    return " ".join(text.split()[-words:])
