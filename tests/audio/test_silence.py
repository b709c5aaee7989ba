"""silence: levels, speech regions against the script's truth, and where find_cut cuts. No files."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audio import samples, silence
from pipeline.audio.silence import FRAME_S, Cut, find_cut, frame_levels_db, speech_regions

RATE = 16_000


def rendered(plan: samples.Script, noise_db: float = -60.0) -> np.ndarray:
    return np.concatenate(list(samples.render(plan, noise_db=noise_db)))


def tone(seconds: float, level: float = 0.3, pitch: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * pitch * t)).astype(np.int16)


def hiss(seconds: float, db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(round(seconds * RATE)) * 32768 * 10 ** (db / 20)
    return noise.astype(np.int16)


def test_levels_per_frame() -> None:
    square = np.tile(np.array([32767, -32767], np.int16), RATE // 2)
    levels = frame_levels_db(np.concatenate([square, np.zeros(RATE + 100, np.int16)]))
    assert len(levels) == int(np.ceil((2 * RATE + 100) / (FRAME_S * RATE)))
    assert levels[:50] == pytest.approx(0.0, abs=0.01)
    assert levels[50:] == pytest.approx(-100.0)
    assert frame_levels_db(tone(1.0, level=0.5)) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert len(frame_levels_db(np.empty(0, np.int16))) == 0


def levels_in_one_pass(pcm: np.ndarray, rate: int) -> np.ndarray:
    """frame_levels_db as it was before it squared in blocks: the whole signal squared at once."""
    size = silence.frame_size(rate)
    starts = np.arange(0, len(pcm), size)
    squares = np.square(pcm, dtype=np.float32)
    lengths = np.diff(np.append(starts, len(pcm)))
    power = np.add.reduceat(squares, starts).astype(np.float64) / lengths
    return 10.0 * np.log10(np.maximum(power / silence.FULL_SCALE**2, 10 ** (silence.SILENT_DB / 10)))


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100])
@pytest.mark.parametrize("length", [1, 319, 321, 160_001, 3 * 160_000 + 7, 1_764_001])
def test_levels_in_blocks_are_bit_identical_to_one_pass(rate: int, length: int) -> None:
    """Full-scale noise: each frame's float32 sum is rounded, so any change in how it is summed shows."""
    pcm = np.random.default_rng(length).integers(-32768, 32768, length, dtype=np.int16)
    assert np.array_equal(frame_levels_db(pcm, rate), levels_in_one_pass(pcm, rate))


@pytest.mark.parametrize("block_s", [FRAME_S, 0.07, 1.0])  # rounded to whole frames: 1, 4 and 50 per block
def test_levels_do_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch, block_s: float) -> None:
    pcm = np.concatenate([hiss(3.013, -30), tone(2.0), np.zeros(501, np.int16)])
    monkeypatch.setattr(silence, "LEVEL_BLOCK_S", block_s)
    assert np.array_equal(frame_levels_db(pcm), levels_in_one_pass(pcm, RATE))


@pytest.mark.parametrize("noise_db", [-60.0, -55.0, -50.0, -45.0, -40.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_speech_regions_are_the_scripts_sentences(noise_db: float, seed: int) -> None:
    plan = samples.script(60, speakers=2, seed=seed)
    found = speech_regions(rendered(plan, noise_db))
    assert len(found) == len(plan.sentences)
    for (start, end), sentence in zip(found, plan.sentences, strict=True):
        assert start == pytest.approx(sentence.start, abs=0.05)
        assert end == pytest.approx(sentence.end, abs=0.05)


@pytest.mark.parametrize(("gap_s", "regions"), [(0.1, 1), (0.25, 1), (0.35, 2), (1.0, 2)])
def test_short_pauses_are_bridged(gap_s: float, regions: int) -> None:
    pcm = np.concatenate([hiss(1, -60), tone(1.0), hiss(gap_s, -60, 1), tone(1.0), hiss(1, -60, 2)])
    assert len(speech_regions(pcm)) == regions


def test_a_click_is_not_speech() -> None:
    pcm = np.concatenate([hiss(1, -60), tone(0.06), hiss(1, -60, 1), tone(1.0), hiss(1, -60, 2)])
    assert speech_regions(pcm) == [pytest.approx((2.06, 3.06), abs=0.021)]


@pytest.mark.parametrize(("pcm", "expected"), [
    (tone(5.0), [(0.0, 5.0)]),  # all speech: no floor to compare with, but loud
    (hiss(5.0, -65), []),  # all quiet room
    (np.zeros(5 * RATE, np.int16), []),  # digital silence
    (tone(5.0, level=0.003), [(0.0, 5.0)]),  # a whisper alone in the file is still above -55 dBFS
])
def test_uniform_recordings(pcm: np.ndarray, expected: list[tuple[float, float]]) -> None:
    assert speech_regions(pcm) == [pytest.approx(region) for region in expected]


def _with_pauses(*pauses: tuple[float, float]) -> np.ndarray:
    """30 s of tone with hiss at the given (start, end) seconds."""
    pcm = tone(30.0)
    for start, end in pauses:
        pcm[round(start * RATE):round(end * RATE)] = hiss(end - start, -60)
    return pcm


def test_cut_in_the_middle_of_the_silence_nearest_the_target() -> None:
    cut = find_cut(_with_pauses((16.5, 17.1), (19.2, 19.8)), RATE, 15.0, 18.0, 20.0)
    assert cut.silent and cut.sample / RATE == pytest.approx(16.8, abs=0.02)
    cut = find_cut(_with_pauses((16.0, 16.6), (18.2, 18.8)), RATE, 15.0, 18.0, 20.0)
    assert cut.silent and cut.sample / RATE == pytest.approx(18.5, abs=0.02)


def test_a_longer_silence_wins_when_close() -> None:
    cut = find_cut(_with_pauses((17.6, 17.95), (18.3, 19.8)), RATE, 15.0, 18.0, 20.0)
    assert cut.silent and cut.sample / RATE == pytest.approx(19.05, abs=0.02)


def test_silences_shorter_than_a_pause_or_outside_the_window_are_not_cuts() -> None:
    cut = find_cut(_with_pauses((10.0, 12.0), (17.0, 17.2), (20.5, 22.0)), RATE, 15.0, 18.0, 20.0)
    assert not cut.silent


def test_without_silence_the_quietest_frame_nearest_the_target() -> None:
    pcm = tone(30.0)
    cut = find_cut(pcm, RATE, 15.0, 18.0, 20.0)
    assert not cut.silent and abs(cut.sample / RATE - 18.0) <= FRAME_S
    pcm[round(16.5 * RATE):round(16.6 * RATE)] //= 4  # a dip, too short to be a pause
    cut = find_cut(pcm, RATE, 15.0, 18.0, 20.0)
    assert not cut.silent and 16.5 <= cut.sample / RATE <= 16.6


@pytest.mark.parametrize(("lo", "target", "hi"), [(15.0, 15.0, 20.0), (15.0, 20.0, 20.0), (0.5, 1.0, 1.5)])
def test_the_cut_stays_in_the_window(lo: float, target: float, hi: float) -> None:
    for pcm in (tone(30.0), _with_pauses((14.0, 21.0)), rendered(samples.script(30, seed=4))):
        cut = find_cut(pcm, RATE, lo, target, hi)
        assert lo * RATE <= cut.sample <= hi * RATE


def test_a_window_past_the_end() -> None:
    assert find_cut(tone(2.0), RATE, 15.0, 18.0, 20.0) == Cut(2 * RATE, silent=False)
