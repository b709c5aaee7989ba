"""Where the speech is and where to cut: levels per 20 ms frame, judged against the recording's own levels.

Pure numpy, no I/O: the emulator imports it to find the speech it "transcribes".

A fixed threshold fails both ways: a room's hum at -40 dBFS would count as speech, and a quiet speaker
at -45 dBFS as silence. So the threshold is set from the recording itself: well above its noise floor
(a low percentile of the frame levels) and not too far below its loud parts. A recording without quiet
parts (one long sentence, a tone) has no floor to compare with: everything above QUIETEST_SPEECH_DB is
speech in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RATE = 16_000  # decode.RATE, repeated so that importing this module does not load PyAV
FRAME_S = 0.02
LEVEL_BLOCK_S = 10.0  # samples squared at a time by frame_levels_db: a 640 kB temporary at 16 kHz
FULL_SCALE = 32768.0
SILENT_DB = -100.0  # the level given to digital silence (the log of zero)
FLOOR_PERCENTILE = 10.0  # the noise floor: pauses fill more than a tenth of almost any speech recording
LOUD_PERCENTILE = 99.0  # the loud parts, short of the odd click
ABOVE_FLOOR_DB = 12.0  # speech stands this far above the floor at least...
BELOW_LOUD_DB = 35.0  # ...and is never quieter than this below the loud parts
QUIETEST_SPEECH_DB = -55.0  # nothing quieter is speech, however quiet the recording
MIN_SILENCE_S = 0.3  # a cut needs this much quiet: shorter dips are stops inside words
LONG_SILENCE_S = 1.5  # longer silences are worth as much as this (turns and paragraphs end in them)
QUIETEST_TOLERANCE_DB = 1.0  # frames this close to the quietest are as good a place to cut


def frame_size(rate: int = RATE) -> int:
    """Samples per FRAME_S frame."""
    return max(1, round(FRAME_S * rate))


def frame_levels_db(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """RMS level of each 20 ms frame in dBFS (the last frame may be shorter)."""
    if len(samples) == 0:
        return np.empty(0)
    size = frame_size(rate)
    starts = np.arange(0, len(samples), size)
    lengths = np.diff(np.append(starts, len(samples)))
    power = _frame_sums(samples, size).astype(np.float64) / lengths
    return 10.0 * np.log10(np.maximum(power / FULL_SCALE**2, 10 ** (SILENT_DB / 10)))


def _frame_sums(samples: np.ndarray, size: int) -> np.ndarray:
    """The float32 sum of squares of each frame of `size` samples, squared LEVEL_BLOCK_S at a time.

    Squaring a whole window at once would need twice its int16 memory again (88 MB for 23 minutes). The
    blocks start on frame boundaries, so each frame is summed by itself exactly as in one pass: the levels
    do not depend on the block size."""
    step = size * max(1, round(LEVEL_BLOCK_S / FRAME_S))
    sums = np.empty(-(-len(samples) // size), dtype=np.float32)
    for first in range(0, len(samples), step):
        # float32 squares halve the memory of float64; a 20 ms sum of int16 squares loses nothing that matters.
        squares = np.square(samples[first:first + step], dtype=np.float32)
        frames = np.add.reduceat(squares, np.arange(0, len(squares), size))
        sums[first // size:first // size + len(frames)] = frames
    return sums


def speech_threshold_db(levels: np.ndarray) -> float:
    """The level above which a frame of this recording is speech."""
    if len(levels) == 0:
        return QUIETEST_SPEECH_DB
    floor = float(np.percentile(levels, FLOOR_PERCENTILE))
    loud = float(np.percentile(levels, LOUD_PERCENTILE))
    if loud - floor < ABOVE_FLOOR_DB:  # uniform: all speech or all quiet, told apart by the absolute level
        return QUIETEST_SPEECH_DB
    return max(floor + ABOVE_FLOOR_DB, loud - BELOW_LOUD_DB, QUIETEST_SPEECH_DB)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where `mask` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def speech_regions(samples: np.ndarray, rate: int = RATE, *, min_silence_s: float = MIN_SILENCE_S,
                   min_speech_s: float = 0.15) -> list[tuple[float, float]]:
    """(start_s, end_s) of each stretch of speech; pauses shorter than min_silence_s do not end one, and
    stretches shorter than min_speech_s (clicks) are left out."""
    levels = frame_levels_db(samples, rate)
    frame_s = frame_size(rate) / rate
    min_gap = _frames(min_silence_s, frame_s)
    merged: list[tuple[int, int]] = []
    for start, end in runs(levels > speech_threshold_db(levels)):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    duration = len(samples) / rate
    return [(start * frame_s, min(end * frame_s, duration)) for start, end in merged
            if end - start >= _frames(min_speech_s, frame_s)]


def _frames(seconds: float, frame_s: float) -> int:
    return max(1, math.ceil(seconds / frame_s - 1e-9))


@dataclass(frozen=True)
class Cut:
    sample: int  # where to cut, an index into the samples given
    silent: bool  # True when the cut lies inside a silence (no overlap needed)


def find_cut(samples: np.ndarray, rate: int, lo_s: float, target_s: float, hi_s: float) -> Cut:
    """Where in [lo_s, hi_s] (seconds from samples[0]) to cut: the middle of a silence near target_s,
    longer silences preferred when close; failing any, the quietest frame nearest target_s."""
    size = frame_size(rate)
    levels = frame_levels_db(samples, rate)
    first = math.ceil(lo_s * rate / size - 1e-9)  # the frames that lie wholly inside the window
    last = int(min(hi_s * rate, len(samples)) // size)
    if last <= first:  # the window holds no whole frame: cut at the target, it is all there is
        return Cut(min(max(round(target_s * rate), 0), len(samples)), silent=False)
    window = levels[first:last]
    target = target_s * rate / size - first  # in frames from the window's start
    quiet = [run for run in runs(window <= speech_threshold_db(levels)) if run[1] - run[0] >= _frames(
        MIN_SILENCE_S, size / rate)]
    if quiet:
        start, end = min(quiet, key=lambda run: _silence_cost(run, target, size / rate))
        return Cut((first + start) * size + (end - start) * size // 2, silent=True)
    return Cut((first + _quietest_near(window, target)) * size + size // 2, silent=False)


def _silence_cost(run: tuple[int, int], target: float, frame_s: float) -> tuple[float, int]:
    """Seconds from the target, less a bonus for length; ties go to the earlier silence."""
    start, end = run
    distance = abs((start + end) / 2 - target) * frame_s
    return distance - min((end - start) * frame_s, LONG_SILENCE_S), start


def _quietest_near(levels: np.ndarray, target: float) -> int:
    quietest = np.flatnonzero(levels <= levels.min() + QUIETEST_TOLERANCE_DB)
    return int(quietest[np.argmin(np.abs(quietest + 0.5 - target))])
