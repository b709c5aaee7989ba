"""Recordings the service cannot take as they are: decoded, cut at silences, re-encoded, sent chunk by chunk,
stitched into one row.

    probe   the container's duration (a thread) -> Transcription.plan_upload: as it is, or chunks
    cut     pipeline/audio.split on a thread, one chunk ahead of the one being sent (decode slots bound the
            CPU and the memory: a cutter holds at most one chunk of 16 kHz samples)
    send    each chunk through the same client as every request (pacing, retries, failure rules), in order:
            a model that takes a prompt gets the end of the previous chunk's words, the diarize model the
            speakers heard so far as known-speaker references
    save    each answer committed under chunks/ (checkpoint/chunks.py) before the next is sent: a rerun
            after a crash sends none of them again
    refuse  a chunk refused as too long (a 400 naming the maximum duration) or too large (413) is cut
            shorter and sent again, never failed for it
    stitch  Transcription.stitch: one result row; the chunk objects go once that row has committed
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import io
import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

import av
import numpy as np

from pipeline.audio.decode import RATE, pcm_blocks
from pipeline.audio.encode import CHUNK_CONTENT_TYPE, CHUNK_FORMAT, encode, encoded_size_bound
from pipeline.audio.probe import probe
from pipeline.audio.split import PcmChunk, split
from pipeline.checkpoint.chunks import ChunkStore, RecordingChunks, SavedChunk
from pipeline.client.service import ServiceClient
from pipeline.endpoints.base import HttpResponse, Item
from pipeline.endpoints.speech_models import DURATION_MARGIN_S, SPEAKER_REFERENCES, duration_limit_in
from pipeline.endpoints.stitching import ChunkAnswer
from pipeline.endpoints.transcription import RAW_KEY, AudioPlan, AudioUpload, ChunkUpload, Transcription
from pipeline.errors import APIError, BadRequestError

T = TypeVar("T")
MAX_RESPLITS = 4  # a chunk refused as too long is cut shorter at most this many times
MIN_CHUNK_S = 10.0
REFERENCE_S = (2.0, 8.0)  # a known-speaker reference: 2 to 10 s of one speaker (we take at most 8)


@dataclass(frozen=True)
class Piece:
    """A chunk to answer: where it lies (samples at RATE from the file's start) and its encoded bytes (None
    when a saved answer makes them unnecessary)."""

    start: int
    end: int
    overlap: int
    data: bytes | None

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / RATE


@dataclass
class Answered:
    """What a recording's chunks cost and gave, for its row."""

    saved: RecordingChunks
    chunks: list[ChunkAnswer] = field(default_factory=list)
    sent: int = 0  # chunk requests answered in this run (saved answers of an earlier run are not)
    attempts: int = 0
    latency_s: float = 0.0  # of the requests sent in this run, summed
    deployment: str | None = None

    def response(self) -> HttpResponse:
        """The row's request id is its first chunk's; all of them are in chunk_request_ids. Its latency is
        the mean of its requests' (the percentiles are per request, not per recording)."""
        first = self.chunks[0].request_id if self.chunks else None
        return HttpResponse(200, {}, b"", self.latency_s / max(self.sent, 1), request_id=first,
                            deployment=self.deployment)


class Speakers:
    """Speaker labels for a whole recording: labels the service gave a chunk that was sent with references
    keep their names; any other label is a new speaker (until the references run out)."""

    def __init__(self) -> None:
        self.references: list[tuple[str, str]] = []  # (label, data URL), sent with every later chunk
        self._next = 0

    def map_chunk(self, result: dict[str, Any]) -> dict[str, str]:
        known = {name for name, _ in self.references}
        mapping: dict[str, str] = {}
        for segment in result.get("segments") or []:
            label = segment.get("speaker")
            if label is not None and label not in mapping:
                mapping[label] = label if label in known else self._new_label()
        return mapping

    def _new_label(self) -> str:
        label = _letters(self._next)
        self._next += 1
        return label

    def wants_reference(self, label: str) -> bool:
        return len(self.references) < SPEAKER_REFERENCES and label not in {n for n, _ in self.references}


NOW, AHEAD = 0, 1  # PrioritySlots priorities: lower goes first


class PrioritySlots:
    """A semaphore whose waiters are served by priority, then in arrival order."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as the wait was cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the waiter
                return
        self.free += 1


class Recordings:
    """Chunked sending for one job (the online engine's transcription and translation workers)."""

    def __init__(self, endpoint: Transcription, store: ChunkStore) -> None:
        self.endpoint = endpoint
        self.store = store
        # CPU work (probe, cut, encode) runs on at most one thread per core; a recording's first chunk, which
        # holds back that recording's first request, goes before work cutting ahead of a request in flight.
        self.decode_slots = PrioritySlots(os.cpu_count() or 2)
        self.pending: list[RecordingChunks] = []  # answered recordings whose chunk objects go after the commit

    async def off_loop(self, call: Callable[..., T], *args: Any, ahead: bool = False) -> T:
        """`call` on a thread once a slot is free (`ahead`: work for a later request, served last)."""
        await self.decode_slots.acquire(AHEAD if ahead else NOW)
        try:
            return await asyncio.to_thread(call, *args)
        finally:
            self.decode_slots.release()

    async def plan(self, upload: AudioUpload) -> tuple[AudioPlan, Any]:
        """How the file goes up, and the source to cut it from (its path, or an object's bytes read once)."""
        if not self.endpoint.worth_probing(upload.size):
            return self.endpoint.plan_upload(upload.size, None, None), None
        source = upload.path if upload.read is None else io.BytesIO(await asyncio.to_thread(upload.read))
        info = await self.off_loop(probe, source)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        encoded = encoded_size_bound(info.duration_s) if info.duration_s else None
        return self.endpoint.plan_upload(upload.size, info.duration_s, encoded), source

    async def send(self, client: ServiceClient, item: Item, plan: AudioPlan, source: Any,
                   stopping: asyncio.Event) -> Answered | None:
        """Every chunk answered (from the service or saved), or None when the run stops first."""
        # Cuts are deterministic for one chunk length and one decoder: answers saved under another are not reused.
        saved_chunks = self.store.recording(item.row.id, f"{plan.max_chunk_s:g}s av{av.__version__}")
        saved = await asyncio.to_thread(saved_chunks.load)
        cutter = _Cutter(split(source, max_chunk_s=plan.max_chunk_s), saved, self.endpoint.diarizes)
        sender = _ChunkSender(self, client, item, saved_chunks, saved)
        upcoming = asyncio.ensure_future(self.off_loop(cutter.next_piece))
        try:
            while (piece := await upcoming) is not None:
                upcoming = asyncio.ensure_future(self.off_loop(cutter.next_piece, ahead=True))  # cut ahead
                await sender.answer(piece, depth=0)
                if stopping.is_set():
                    return None
        finally:
            upcoming.add_done_callback(lambda _: cutter.close())  # never close it under a running cut
        return sender.answered

    def row_added(self, answered: Answered) -> None:
        """The recording's row is buffered: its saved chunks go once the run's last commit succeeded."""
        self.pending.append(answered.saved)

    def forget_committed(self) -> None:
        """After the final commit: the saved chunks of rows now in results/ are no longer needed."""
        for recording in self.pending:
            recording.discard()
        self.pending.clear()


class _Cutter:
    """The chunks of one file, pulled one at a time on a thread; a saved chunk is not encoded again."""

    def __init__(self, chunks: Iterator[PcmChunk], saved: dict[tuple[int, int], SavedChunk], keep_all: bool) -> None:
        self.chunks = chunks
        self.saved = saved
        self.keep_all = keep_all  # diarizing: speaker references are cut from the audio of answered chunks

    def next_piece(self) -> Piece | None:
        chunk = next(self.chunks, None)
        if chunk is None:
            return None
        known = self.saved.get((chunk.start, chunk.end))
        needed = known is None or known.split_s is not None or self.keep_all
        return Piece(chunk.start, chunk.end, chunk.overlap, encode(chunk.samples) if needed else None)

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class _ChunkSender:
    """Answers the chunks of one recording in order, keeping what the next chunk is sent with."""

    def __init__(self, recordings: Recordings, client: ServiceClient, item: Item, saved_chunks: RecordingChunks,
                 saved: dict[tuple[int, int], SavedChunk]) -> None:
        self.recordings = recordings
        self.endpoint = recordings.endpoint
        self.client = client
        self.item = item
        self.saved_chunks = saved_chunks
        self.saved = saved
        self.answered = Answered(saved_chunks)
        self.speakers = Speakers()
        self.previous_text: str | None = None

    async def answer(self, piece: Piece, depth: int) -> None:
        known = self.saved.get((piece.start, piece.end))
        if known is not None and known.split_s is not None:
            await self._resplit(piece, known.split_s, depth)
            return
        if known is not None and known.result is not None:
            await self._add(piece, known.result, known.request_id)
            return
        try:
            result, response, attempts = await self._send(piece)
        except APIError as error:
            shorter = shorter_chunk_s(error, piece.seconds, len(piece.data or b""))
            if shorter is None or depth >= MAX_RESPLITS or piece.data is None:
                raise
            max_s = max(MIN_CHUNK_S, shorter)
            await self._save(SavedChunk(piece.start, piece.end, piece.overlap, error.request_id, error.attempts,
                                        0.0, None, split_s=max_s))
            await self._resplit(piece, max_s, depth)
            return
        self.answered.sent += 1
        self.answered.attempts += attempts
        self.answered.latency_s += response.latency_s
        self.answered.deployment = response.deployment
        await self._save(SavedChunk(piece.start, piece.end, piece.overlap, response.request_id, attempts,
                                    response.latency_s, result))
        await self._add(piece, result, response.request_id)

    async def _send(self, piece: Piece) -> tuple[dict[str, Any], HttpResponse, int]:
        assert piece.data is not None  # a chunk without a saved answer is always encoded
        upload: AudioUpload = self.item.payload
        chunk = ChunkUpload(piece.data, chunk_name(upload.filename, piece.start), CHUNK_CONTENT_TYPE,
                            prompt=self.endpoint.chunk_prompt(self.previous_text),
                            speakers=tuple(self.speakers.references))
        results, response, attempts = await self.client.call(self.endpoint.build_chunk(self.item, chunk),
                                                             self.endpoint.parse)
        (result,) = results
        for key in (RAW_KEY, "chunks", "chunk_request_ids", "format"):
            result.pop(key, None)  # the row's own, set when stitched; the raw body is not kept per chunk
        return result, response, attempts

    async def _resplit(self, piece: Piece, max_s: float, depth: int) -> None:
        """Cut a refused chunk into chunks of at most `max_s` and answer them (saved under their offsets)."""
        assert piece.data is not None
        parts = await self.recordings.off_loop(_cut_encoded, piece.data, max_s)
        for part in parts:
            start = piece.start + part.start
            overlap = piece.overlap if part.start == 0 else part.overlap
            await self.answer(Piece(start, piece.start + part.end, overlap, part.data), depth + 1)

    async def _save(self, chunk: SavedChunk) -> None:
        await asyncio.to_thread(self.saved_chunks.save, chunk)

    async def _add(self, piece: Piece, result: dict[str, Any], request_id: str | None) -> None:
        mapping = self.speakers.map_chunk(result) if self.endpoint.diarizes else {}
        self.answered.chunks.append(ChunkAnswer(piece.start / RATE, piece.end / RATE, piece.overlap / RATE,
                                                result, request_id, mapping))
        self.previous_text = result.get("text")
        if mapping and piece.data is not None:
            await self._learn_speakers(piece, result, mapping)

    async def _learn_speakers(self, piece: Piece, result: dict[str, Any], mapping: dict[str, str]) -> None:
        """References for speakers first heard in this chunk: a few seconds of each, cut from its audio."""
        wanted = {label: clip for label, clip in speaker_clips(result.get("segments") or [], mapping).items()
                  if self.speakers.wants_reference(label)}
        if not wanted:
            return
        assert piece.data is not None
        clips = await self.recordings.off_loop(_encode_clips, piece.data, list(wanted.values()))
        for label, data in zip(wanted, clips, strict=True):
            if self.speakers.wants_reference(label):
                self.speakers.references.append((label, "data:audio/ogg;base64," + base64.b64encode(data).decode()))


@dataclass(frozen=True)
class _Part:
    start: int
    end: int
    overlap: int
    data: bytes


def _cut_encoded(data: bytes, max_chunk_s: float) -> list[_Part]:
    """An encoded chunk cut into shorter ones (offsets relative to it). Runs on a thread."""
    return [_Part(c.start, c.end, c.overlap, encode(c.samples)) for c in split(io.BytesIO(data),
                                                                            max_chunk_s=max_chunk_s)]


def _encode_clips(data: bytes, clips: list[tuple[float, float]]) -> list[bytes]:
    samples = np.concatenate(list(pcm_blocks(io.BytesIO(data)))) if data else np.zeros(0, np.int16)
    return [encode(samples[int(a * RATE):int(b * RATE)]) for a, b in clips]


def speaker_clips(segments: list[dict[str, Any]], mapping: dict[str, str]) -> dict[str, tuple[float, float]]:
    """For each speaker of a chunk (by recording label), the span of its longest segment of at least 2 s,
    cut to 8 s: what the diarize model takes as a known-speaker reference."""
    best: dict[str, tuple[float, float]] = {}
    for segment in segments:
        label = mapping.get(segment.get("speaker") or "")
        start, end = float(segment["start"]), float(segment["end"])
        if label is None or end - start < REFERENCE_S[0]:
            continue
        if label not in best or end - start > best[label][1] - best[label][0]:
            best[label] = (start, end)
    return {label: (start, min(end, start + REFERENCE_S[1])) for label, (start, end) in best.items()}


def shorter_chunk_s(error: APIError, seconds: float, size: int) -> float | None:
    """How long the parts of a chunk the service refused for its length or size must be; None when the
    refusal is for something else. A 413 names its byte limit ("Maximum content size limit (26214400)"):
    the parts are cut to fit it with a tenth to spare (halves when it names none)."""
    if error.status == 413:
        limit = bytes_limit_in(error.message)
        return seconds * (0.5 if limit is None or size <= 0 else min(0.9, 0.9 * limit / size))
    limit_s = duration_limit_in(error.message) if isinstance(error, BadRequestError) else None
    if limit_s is None:
        return None
    return min(limit_s - min(DURATION_MARGIN_S, limit_s * 0.05), seconds * 0.9)


def bytes_limit_in(message: str) -> int | None:
    match = re.search(r"limit \((\d+)\)", message)
    return int(match.group(1)) if match else None


def chunk_name(filename: str, start: int) -> str:
    """`talk.wav` -> `talk.000123.4s.ogg`: the service sees what it is and where it came from."""
    stem = PurePosixPath(filename).stem or "audio"
    return f"{stem}.{start / RATE:08.1f}s.{CHUNK_FORMAT}"


def _letters(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the service's own style of speaker label."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label
