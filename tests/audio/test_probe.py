"""probe: what the headers say, for each container the pipeline meets, and refusals of what is not audio."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.audio.errors import AudioDecodeError
from pipeline.audio.probe import MediaInfo, probe

from .conftest import PLAN

# extension: (codec, sample rate) as probe reports them (Opus always decodes at 48 kHz)
FORMATS = {"wav": ("pcm_s16le", 16_000), "flac": ("flac", 16_000), "mp3": ("mp3", 16_000),
           "m4a": ("aac", 16_000), "ogg": ("opus", 48_000), "webm": ("opus", 48_000)}


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_probe_reports_the_headers(folder: Path, ext: str) -> None:
    info = probe(folder / f"speech.{ext}")
    codec, rate = FORMATS[ext]
    assert (info.codec, info.sample_rate, info.channels) == (codec, rate, 1)
    assert info.duration_s == pytest.approx(PLAN.duration, abs=0.1)
    assert info.bit_rate and info.bit_rate > 0
    assert info.container


def test_probe_of_stereo_44k_wav(folder: Path) -> None:
    assert probe(str(folder / "stereo.wav")) == MediaInfo(30.0, "pcm_s16le", 44_100, 2, 44_100 * 2 * 16, "wav")


def test_probe_of_a_file_object_leaves_its_position(folder: Path) -> None:
    stream = io.BytesIO((folder / "speech.m4a").read_bytes())
    stream.seek(5)
    assert probe(stream).codec == "aac"
    assert stream.tell() == 5


def test_text_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("hello, this is not a recording\n" * 200)
    with pytest.raises(AudioDecodeError, match="not a readable media file") as caught:
        probe(path)
    assert "\n" not in str(caught.value)


def test_random_bytes_named_mp3_are_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(200_000))
    with pytest.raises(AudioDecodeError):
        probe(path)


def test_video_without_sound_has_no_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 64
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    with pytest.raises(AudioDecodeError, match=r"^no audio stream in the file$"):
        probe(path)


def test_a_missing_file_is_an_os_error_not_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "absent.wav")
