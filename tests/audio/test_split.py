"""split: chunks that tile the source exactly, cut in pauses, stay under the maximum, and stream."""

from __future__ import annotations

import io
import itertools
import tracemalloc
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from pipeline.audio import samples
from pipeline.audio.decode import BLOCK_S, RATE, pcm_blocks
from pipeline.audio.probe import Source
from pipeline.audio.silence import find_cut
from pipeline.audio.split import LO_SHARE, TAIL_S, TARGET_SHARE, PcmChunk, split

PLAN = samples.script(90, speakers=2, seed=5)
MAX_S = 20.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("split")
    samples.write(path / "speech.wav", PLAN)
    samples.write(path / "speech.mp3", PLAN)
    continuous = samples.Script((samples.Sentence(0.0, 70.0, 440.0, 0),), 70.0)
    samples.write(path / "tone.flac", continuous)
    return path


def check_tiling(chunks: list[PcmChunk], source: Source) -> None:
    """Each chunk at most MAX_S, starting where the previous ended less its overlap; the chunks without their
    overlaps are the decoded stream, sample for sample."""
    assert chunks[0].start == 0 and chunks[0].overlap == 0
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert len(chunk.samples) == chunk.end - chunk.start <= MAX_S * RATE
        assert chunk.samples.dtype == np.int16
    for before, after in itertools.pairwise(chunks):
        assert after.start == before.end - after.overlap
        assert np.array_equal(after.samples[:after.overlap], before.samples[len(before.samples) - after.overlap:])
    rebuilt = np.concatenate([c.samples[c.overlap:] for c in chunks])
    assert np.array_equal(rebuilt, np.concatenate(list(pcm_blocks(source))))


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3"])
def test_chunks_tile_the_source_and_cut_in_pauses(folder: Path, name: str) -> None:
    chunks = list(split(folder / name, max_chunk_s=MAX_S))
    check_tiling(chunks, folder / name)
    assert len(chunks) >= 5
    silent_cuts = [before.end_s for before, after in itertools.pairwise(chunks) if after.overlap == 0]
    assert len(silent_cuts) >= 2  # the script pauses every few seconds: most windows hold one
    for cut in silent_cuts:
        assert not [s for s in PLAN.sentences if s.start - 0.05 < cut < s.end + 0.05], cut


def test_overlapping_chunks_are_cut_overlap_s_before(folder: Path) -> None:
    chunks = list(split(folder / "speech.wav", max_chunk_s=MAX_S, overlap_s=1.5))
    assert {c.overlap for c in chunks[1:]} <= {0, round(1.5 * RATE)}


def test_continuous_sound_gives_overlapping_chunks(folder: Path) -> None:
    chunks = list(split(folder / "tone.flac", max_chunk_s=MAX_S, target_chunk_s=18.0))
    check_tiling(chunks, folder / "tone.flac")
    assert [c.overlap for c in chunks[1:]] == [RATE] * (len(chunks) - 1)
    assert chunks[0].end_s == pytest.approx(18.0, abs=0.02)


def _signature(chunks: Iterator[PcmChunk]) -> list[tuple[int, int, int, bytes]]:
    return [(c.start, c.end, c.overlap, c.samples.tobytes()) for c in chunks]


def test_the_same_source_gives_the_same_chunks(folder: Path) -> None:
    path = folder / "speech.mp3"
    first = _signature(split(path, max_chunk_s=MAX_S))
    assert _signature(split(path, max_chunk_s=MAX_S)) == first
    assert _signature(split(io.BytesIO(path.read_bytes()), max_chunk_s=MAX_S)) == first


def test_short_sources_are_one_chunk(tmp_path: Path) -> None:
    for seconds in (5.0, MAX_S):
        path = samples.write(tmp_path / f"short{seconds}.wav", samples.script(seconds, seed=1))
        [chunk] = split(path, max_chunk_s=MAX_S)
        assert (chunk.start, chunk.end, chunk.overlap) == (0, round(seconds * RATE), 0)
        assert chunk.duration_s == seconds


def test_the_last_chunk_is_never_a_sliver(tmp_path: Path) -> None:
    continuous = samples.Script((samples.Sentence(0.0, MAX_S + 0.2, 440.0, 0),), MAX_S + 0.2)
    path = samples.write(tmp_path / "just_over.wav", continuous)
    chunks = list(split(path, max_chunk_s=MAX_S))
    assert len(chunks) == 2
    assert chunks[1].end - chunks[1].start - chunks[1].overlap >= TAIL_S * RATE
    check_tiling(chunks, path)


@pytest.mark.parametrize(("max_chunk_s", "overlap_s"), [(2.0, 0.0), (20.0, 6.0), (20.0, -1.0)])
def test_impossible_parameters_are_refused_at_once(max_chunk_s: float, overlap_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        split("never-opened.wav", max_chunk_s=max_chunk_s, overlap_s=overlap_s)


class CountingReader(io.FileIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_chunks_are_pulled_not_pushed(folder: Path) -> None:
    path = folder / "speech.wav"
    with CountingReader(path) as reader:
        chunks = split(reader, max_chunk_s=MAX_S)
        assert isinstance(chunks, Generator)
        assert reader.read_bytes == 0
        next(chunks)
        assert 0 < reader.read_bytes < 0.4 * path.stat().st_size  # a 20 s chunk of 90 s, plus read-ahead
        chunks.close()


def test_memory_stays_at_a_chunk_for_a_quarter_hour_recording(tmp_path: Path) -> None:
    path = samples.write(tmp_path / "long.wav", samples.script(900, speakers=2, seed=6))
    list(split(samples.write(tmp_path / "warm.wav", samples.script(5)), max_chunk_s=60))  # FFmpeg's own setup
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    count = 0
    for chunk in split(path, max_chunk_s=60):
        peak = max(peak, process.memory_info().rss)
        count += 1
        del chunk
    assert count >= 15
    assert peak - baseline < 20 * 2**20  # the decoded audio is 27 MiB


def restated(pcm: np.ndarray, max_s: float, overlap_s: float = 1.0) -> list[tuple[int, int, int]]:
    """(start, end, overlap) of each chunk by split's rule over the whole stream at once: while audio lies
    beyond a window of max_s + TAIL_S from where the next chunk starts, cut in that window; then the rest."""
    size, tail, overlap = round(max_s * RATE), round(TAIL_S * RATE), round(overlap_s * RATE)
    lo, target = round(LO_SHARE * size), round(TARGET_SHARE * max_s * RATE)
    chunks: list[tuple[int, int, int]] = []
    start = carried = 0
    while len(pcm) - start > size:
        remaining = len(pcm) - start
        hi = size if remaining > size + tail else max(lo, min(size, remaining - tail))
        where = find_cut(pcm[start:start + size + tail], RATE, lo / RATE, min(target, hi) / RATE, hi / RATE)
        chunks.append((start, start + where.sample, carried))
        carried = 0 if where.silent else overlap
        start += where.sample - carried
    if len(pcm) - start > carried:
        chunks.append((start, len(pcm), carried))
    return chunks


@pytest.mark.parametrize("max_s", [4.0, 17.3, MAX_S, 69.5, 89.9, 200.0])
@pytest.mark.parametrize("name", ["speech.wav", "tone.flac"])
def test_the_chunks_are_the_rule_applied_to_the_whole_stream(folder: Path, name: str, max_s: float) -> None:
    """However the samples are buffered, the chunks are those of the rule, sample for sample."""
    pcm = np.concatenate(list(pcm_blocks(folder / name)))
    chunks = list(split(folder / name, max_chunk_s=max_s))
    assert [(c.start, c.end, c.overlap) for c in chunks] == restated(pcm, max_s)
    for chunk in chunks:
        assert np.array_equal(chunk.samples, pcm[chunk.start:chunk.end])


def _int16_bytes(seconds: float) -> int:
    return round(seconds * RATE) * 2


def warm_up(folder: Path) -> None:
    """A split with cuts, so that what is imported or set up on first use is not counted as held."""
    list(split(samples.write(folder / "warm.wav", samples.script(12)), max_chunk_s=4))


def test_a_paused_split_holds_only_the_last_cuts_leftover(tmp_path: Path) -> None:
    """An engine keeps many recordings in flight, each split paused between chunks: what it holds then is
    what the last cut left over, far below a window (121 s of int16 = 3.9 MB here)."""
    path = samples.write(tmp_path / "ten_minutes.wav", samples.script(600, seed=2))
    max_s, overlap_s = 120.0, 1.0
    warm_up(tmp_path)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        held = []
        for chunk in split(path, max_chunk_s=max_s, overlap_s=overlap_s):
            del chunk  # the consumer is done with it: what is left is the split's
            held.append(tracemalloc.get_traced_memory()[0] - baseline)
    finally:
        tracemalloc.stop()
    assert len(held) >= 5
    leftover = _int16_bytes((1 - LO_SHARE) * max_s + TAIL_S + overlap_s)  # the most a cut leaves: 1 MB
    assert max(held) < leftover + _int16_bytes(2 * BLOCK_S) + 2**18  # + the decode block being taken, PyAV


def test_cutting_a_quarter_hour_recording_peaks_below_three_windows(tmp_path: Path) -> None:
    """The peak, for a consumer that holds each chunk until the next arrives, stays within 3 windows' int16
    size (301 s = 9.6 MB here): the chunk held, the window being filled, its leftover copy and the levels.
    Before, it was 5: the window, its float32 squares (two more), the chunk's copy and the chunk held."""
    path = samples.write(tmp_path / "quarter_hour.wav", samples.script(900, speakers=2, seed=3))
    window = _int16_bytes(300 + TAIL_S)
    warm_up(tmp_path)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        count = 0
        for chunk in split(path, max_chunk_s=300):
            count += chunk.end > chunk.start
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert count >= 3
    assert peak < 3 * window
