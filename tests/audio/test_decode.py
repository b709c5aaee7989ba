"""pcm_blocks: every container to the same 16 kHz mono timeline, and damaged files refused in one line."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.audio.decode import RATE, pcm_blocks
from pipeline.audio.errors import AudioDecodeError
from pipeline.audio.probe import Source
from pipeline.audio.silence import speech_regions

from .conftest import EXTENSIONS, PLAN


def decoded(source: Source) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(source)))


def assert_sentences_found(pcm: np.ndarray, tolerance_s: float) -> None:
    found = speech_regions(pcm)
    assert len(found) == len(PLAN.sentences)
    for (start, end), sentence in zip(found, PLAN.sentences, strict=True):
        assert start == pytest.approx(sentence.start, abs=tolerance_s)
        assert end == pytest.approx(sentence.end, abs=tolerance_s)


@pytest.mark.parametrize("name", [*(f"speech.{ext}" for ext in EXTENSIONS), "stereo.wav"])
def test_every_format_gives_the_scripts_timeline(folder: Path, name: str) -> None:
    pcm = decoded(folder / name)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) / RATE == pytest.approx(PLAN.duration, abs=0.05)
    assert_sentences_found(pcm, tolerance_s=0.1)


def test_blocks_are_streamed_not_the_whole_file(folder: Path) -> None:
    sizes = [len(block) for block in pcm_blocks(folder / "speech.flac")]
    assert len(sizes) >= 25 and max(sizes) < 2 * RATE


def test_a_file_object_decodes_like_the_path(folder: Path) -> None:
    path = folder / "speech.mp3"
    assert np.array_equal(decoded(io.BytesIO(path.read_bytes())), decoded(path))


def test_another_rate(folder: Path) -> None:
    total = sum(len(block) for block in pcm_blocks(folder / "speech.wav", rate=8_000))
    assert total == 30 * 8_000


def _faststart(source: Path, target: Path) -> Path:
    """The same MP4 with its index (moov) first, as phones and web uploads often write it."""
    with av.open(str(source)) as inp, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


def _cut(path: Path, share: float, target: Path) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


@pytest.mark.parametrize("ext", ["flac", "mp3", "faststart.m4a"])
def test_a_file_cut_at_40_percent_is_truncated(folder: Path, tmp_path: Path, ext: str) -> None:
    source = _faststart(folder / "speech.m4a", tmp_path / "fast.m4a") if ext == "faststart.m4a" else \
        folder / f"speech.{ext}"
    cut = _cut(source, 0.4, tmp_path / f"cut.{ext}")
    expected = r"^truncated: the header says 30\.0 s, only 1\d\.\d s could be decoded$"
    with pytest.raises(AudioDecodeError, match=expected):
        decoded(cut)


def test_an_m4a_cut_before_its_index_cannot_be_opened(folder: Path, tmp_path: Path) -> None:
    cut = _cut(folder / "speech.m4a", 0.4, tmp_path / "cut.m4a")
    with pytest.raises(AudioDecodeError, match="not a readable media file"):
        decoded(cut)


@pytest.mark.parametrize("ext", ["mp3", "flac", "ogg", "webm"])
def test_garbage_after_a_valid_header_fails(folder: Path, tmp_path: Path, ext: str) -> None:
    data = (folder / f"speech.{ext}").read_bytes()
    keep = len(data) // 10
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(data[:keep] + np.random.default_rng(1).bytes(len(data) - keep))
    with pytest.raises(AudioDecodeError) as caught:
        decoded(path)
    assert "\n" not in str(caught.value) and str(caught.value).split(":")[0] in ("cannot decode", "cannot read",
                                                                                  "truncated")


@pytest.mark.parametrize("ext", ["mp3", "m4a", "flac"])
def test_a_few_corrupt_packets_in_the_middle_are_decoded_past(folder: Path, tmp_path: Path, ext: str) -> None:
    data = bytearray((folder / f"speech.{ext}").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 1000] = np.random.default_rng(2).bytes(1000)
    path = tmp_path / f"scratched.{ext}"
    path.write_bytes(bytes(data))
    assert len(decoded(path)) / RATE > 0.95 * PLAN.duration


def test_a_file_scratched_all_over_fails(folder: Path, tmp_path: Path) -> None:
    data = bytearray((folder / "speech.m4a").read_bytes())
    rng = np.random.default_rng(4)
    for at in np.linspace(len(data) * 0.05, len(data) * 0.95, 60).astype(int):
        data[at:at + 100] = rng.bytes(100)
    path = tmp_path / "scratched.m4a"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match=r"^cannot decode: \d+ of \d+ packets of the aac stream are invalid$"):
        decoded(path)


@pytest.mark.parametrize("content", [b"hello, not a recording\n" * 300, np.random.default_rng(0).bytes(100_000)])
def test_what_is_not_audio_fails_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError) as caught:
        decoded(path)
    assert str(caught.value) and "\n" not in str(caught.value)


def _vbr_mp3_without_header(path: Path) -> Path:
    """A VBR MP3 without its Xing header, 8 s of silence then 12 s of hiss: FFmpeg can only guess its duration
    from the first (silent, cheap) frames' bit rate, and guesses far too long."""
    rng = np.random.default_rng(3)
    blocks = [np.zeros(8 * RATE, np.int16), (rng.standard_normal(12 * RATE) * 8000).astype(np.int16)]
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.codec_context.qscale = True
        stream.codec_context.global_quality = 2 * 118  # FF_QP2LAMBDA: LAME's -V2
        pts = 0
        for block in blocks:
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, pts
            pts += len(block)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_guessed_duration_is_not_called_truncation(tmp_path: Path) -> None:
    path = _vbr_mp3_without_header(tmp_path / "vbr.mp3")
    with av.open(str(path)) as container:
        assert (container.duration or 0) / av.time_base > 20.0 / 0.9  # the guess: "truncated" if it were believed
    assert len(decoded(path)) / RATE == pytest.approx(20.0, abs=0.1)
