"""encode: Ogg/Opus chunks that decode to exactly their samples, within the size bound."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pipeline.audio import samples
from pipeline.audio.decode import RATE, pcm_blocks
from pipeline.audio.encode import CHUNK_BIT_RATE, CHUNK_CONTENT_TYPE, CHUNK_FORMAT, encode, encoded_size_bound
from pipeline.audio.probe import probe
from pipeline.audio.silence import speech_regions

PLAN = samples.script(40, speakers=2, seed=8)
SPEECH = np.concatenate(list(samples.render(PLAN, noise_db=-50)))


def decoded(data: bytes) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(io.BytesIO(data))))


def test_the_chunk_is_ogg_opus() -> None:
    assert (CHUNK_FORMAT, CHUNK_CONTENT_TYPE) == ("ogg", "audio/ogg")
    info = probe(io.BytesIO(encode(SPEECH[: 3 * RATE])))
    assert (info.container, info.codec, info.channels) == ("ogg", "opus", 1)


def test_round_trip_keeps_length_and_offsets() -> None:
    back = decoded(encode(SPEECH))
    assert abs(len(back) - len(SPEECH)) <= 0.03 * RATE  # pre-skip and end trim handled: offsets stay exact
    assert np.corrcoef(back.astype(float), SPEECH.astype(float))[0, 1] > 0.99  # and nothing shifted
    for (start, end), (start_, end_) in zip(speech_regions(back), speech_regions(SPEECH), strict=True):
        assert start == pytest.approx(start_, abs=0.05) and end == pytest.approx(end_, abs=0.05)


@pytest.mark.parametrize("count", [RATE // 10, RATE + 17, 7 * RATE + 5])
def test_any_length_round_trips(count: int) -> None:
    assert abs(len(decoded(encode(SPEECH[:count]))) - count) <= 0.03 * RATE


def test_bytes_per_second_follow_the_bit_rate() -> None:
    per_second = len(encode(SPEECH)) / PLAN.duration
    assert 0.9 * CHUNK_BIT_RATE / 8 <= per_second <= 1.1 * CHUNK_BIT_RATE / 8


@pytest.mark.parametrize("seconds", [0.05, 1.0, 5.0, 30.0])
@pytest.mark.parametrize("kind", ["speech", "loud hiss", "digital silence"])
def test_the_size_bound_holds_for_any_content(seconds: float, kind: str) -> None:
    count = round(seconds * RATE)
    pcm = {"speech": SPEECH[:count],
           "loud hiss": (np.random.default_rng(0).standard_normal(count) * 30_000).clip(-32768, 32767),
           "digital silence": np.zeros(count)}[kind].astype(np.int16)
    assert len(encode(pcm)) <= encoded_size_bound(seconds)


def test_the_bound_is_not_wildly_loose() -> None:
    assert encoded_size_bound(60.0) < 1.2 * len(encode(np.tile(SPEECH, 2)[: 60 * RATE]))


def test_int16_mono_at_opus_rates_only() -> None:
    with pytest.raises(ValueError, match="44100"):
        encode(SPEECH, rate=44_100)
    with pytest.raises(ValueError, match="int16 mono"):
        encode(SPEECH.astype(np.float32))
    with pytest.raises(ValueError, match="int16 mono"):
        encode(np.stack([SPEECH, SPEECH]))
