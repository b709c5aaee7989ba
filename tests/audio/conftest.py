"""One set of recordings for the audio tests: the same 30 s two-speaker script in every container."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.audio import samples

PLAN = samples.script(30, speakers=2, seed=2)
EXTENSIONS = ("wav", "flac", "mp3", "m4a", "ogg", "webm")


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speech.<ext> for each of EXTENSIONS, and stereo.wav (44.1 kHz, two channels)."""
    path = tmp_path_factory.mktemp("recordings")
    for ext in EXTENSIONS:
        samples.write(path / f"speech.{ext}", PLAN)
    samples.write(path / "stereo.wav", PLAN, rate=44_100, channels=2)
    return path
