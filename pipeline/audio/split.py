"""A recording of any length as consecutive chunks of at most max_chunk_s, cut in silences where it has any.

Pull-based: decoding happens as chunks are asked for, and memory holds one window of max_chunk_s plus
TAIL_S of samples and one decode block; the window's array is handed out as the chunk, not copied. Between
pulls a split holds only what the last cut left over (at most a quarter of max_chunk_s plus TAIL_S and the
overlap): an engine keeps many recordings in flight, each paused between chunks. The same decoded stream
always gives the same chunks (resume relies on it): a cut depends only on the window's samples, never on
how the decoder happened to block them.

A cut is looked for only once audio beyond the window exists, so a source of at most max_chunk_s is one
chunk. The window reaches TAIL_S past max_chunk_s so that, when the stream ends within it, the last cut
can leave at least TAIL_S to the last chunk: a service refuses clips of a fraction of a second, and a
remainder that short would carry no words anyway. No chunk is merged into its predecessor after the fact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.audio.decode import RATE, pcm_blocks
from pipeline.audio.probe import Source
from pipeline.audio.silence import find_cut

LO_SHARE = 0.75  # cuts are looked for in [LO_SHARE * max, max] of the window
TARGET_SHARE = 0.9  # the default target within it
TAIL_S = 1.0  # the least audio the last cut leaves to the last chunk (when max_chunk_s >= MIN_CHUNK_S)
MIN_CHUNK_S = 4 * TAIL_S


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool; chunks are compared by field
class PcmChunk:
    index: int
    start: int  # first sample, at `rate`, counted from the start of the source
    end: int  # one past the last sample
    samples: np.ndarray  # int16 mono, len == end - start
    overlap: int  # samples at its start that the previous chunk also holds (0 when cut in silence)
    rate: int = RATE

    @property
    def start_s(self) -> float:
        return self.start / self.rate

    @property
    def end_s(self) -> float:
        return self.end / self.rate

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / self.rate


@dataclass(frozen=True)
class _Plan:
    """The split's parameters in samples, validated once."""

    rate: int
    max: int
    lo: int
    target: int
    overlap: int
    tail: int

    @staticmethod
    def of(max_chunk_s: float, target_chunk_s: float | None, overlap_s: float, rate: int) -> _Plan:
        if max_chunk_s < MIN_CHUNK_S:
            raise ValueError(f"max_chunk_s must be at least {MIN_CHUNK_S} s, not {max_chunk_s}")
        if not 0 <= overlap_s <= max_chunk_s * (1 - LO_SHARE):
            raise ValueError(f"overlap_s must be within [0, {max_chunk_s * (1 - LO_SHARE)}] s, not {overlap_s}")
        size = round(max_chunk_s * rate)
        lo = round(LO_SHARE * size)
        target = round((target_chunk_s if target_chunk_s is not None else TARGET_SHARE * max_chunk_s) * rate)
        return _Plan(rate, size, lo, min(max(target, lo), size), round(overlap_s * rate), round(TAIL_S * rate))


class _Window:
    """The samples not yet handed out in full: source samples [start, start + filled). Between cuts the array
    holds only what the last cut left over; it becomes a whole window once more audio comes, and that array
    is handed out as the next chunk's samples."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = np.empty(0, dtype=np.int16)
        self.start = 0
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == self.capacity

    def take(self, block: np.ndarray, at: int) -> int:
        """Copy as much of block[at:] as fits; the index into block reached."""
        count = min(len(block) - at, self.capacity - self.filled)
        if self.filled + count > len(self.data):
            self._grow()
        self.data[self.filled:self.filled + count] = block[at:at + count]
        self.filled += count
        return at + count

    def hand_out(self, end: int, keep_from: int) -> np.ndarray:
        """The first `end` samples as an array of their own; the window keeps a copy of those from `keep_from`
        on, so that the array handed out is freed as soon as its chunk is dropped."""
        kept = self.data[keep_from:self.filled].copy()
        # In place (realloc): the rest of the window goes without a copy of the chunk. No view of the array
        # outlives a call into this class, hence refcheck=False.
        self.data.resize(end, refcheck=False)
        head, self.data = self.data, kept
        self.start += keep_from
        self.filled -= keep_from
        return head

    def _grow(self) -> None:
        """Room for a whole window, the leftover copied to its front."""
        # One fresh array, not growth by realloc: numpy has the kernel back a fresh large array with huge pages,
        # so filling it costs a few page faults rather than one per 4 kB (8 % of the CPU time of cutting a 10-minute
        # WAV file). Pages never written take no memory, and hand_out gives them back.
        grown = np.empty(self.capacity, dtype=np.int16)
        grown[:self.filled] = self.data[:self.filled]
        self.data = grown


class _Chunker:
    """Cuts chunks off the front of the window."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.window = _Window(plan.max + plan.tail)
        self.index = 0
        self.overlap = 0  # of the chunk to come

    def cut(self, *, last: bool) -> PcmChunk:
        """The next chunk, ending at a cut in the window. When the stream has ended (`last`) the cut leaves
        the final chunk at least TAIL_S."""
        plan, window = self.plan, self.window
        hi = max(plan.lo, min(plan.max, window.filled - plan.tail)) if last else plan.max
        rate = plan.rate
        where = find_cut(window.data[:window.filled], rate, plan.lo / rate, min(plan.target, hi) / rate, hi / rate)
        after = where.sample if where.silent else where.sample - plan.overlap
        chunk = self._chunk(where.sample, keep_from=after)
        self.overlap = where.sample - after
        return chunk

    def rest(self) -> Iterator[PcmChunk]:
        """What remains once the stream has ended: one chunk, or two if it is longer than a chunk may be."""
        if self.window.filled > self.plan.max:
            yield self.cut(last=True)
        if self.window.filled > self.overlap:
            yield self._chunk(self.window.filled, keep_from=self.window.filled)

    def _chunk(self, end: int, *, keep_from: int) -> PcmChunk:
        """The window's first `end` samples as the next chunk; the window goes on from `keep_from`."""
        start = self.window.start
        samples = self.window.hand_out(end, keep_from)
        chunk = PcmChunk(self.index, start, start + end, samples, self.overlap, self.plan.rate)
        self.index += 1
        return chunk


def split(source: Source, *, max_chunk_s: float, target_chunk_s: float | None = None, overlap_s: float = 1.0,
          rate: int = RATE) -> Iterator[PcmChunk]:
    """Consecutive chunks of the decoded source, each at most max_chunk_s; a chunk cut outside a silence
    shares overlap_s with the next. Raises ValueError for impossible parameters (before reading anything),
    AudioDecodeError as pcm_blocks does."""
    chunker = _Chunker(_Plan.of(max_chunk_s, target_chunk_s, overlap_s, rate))
    return _chunks(source, chunker)


def _chunks(source: Source, chunker: _Chunker) -> Iterator[PcmChunk]:
    for block in pcm_blocks(source, chunker.plan.rate):
        at = 0
        while at < len(block):
            if chunker.window.full:  # and there is more: time to cut
                yield chunker.cut(last=False)
            at = chunker.window.take(block, at)
    yield from chunker.rest()
