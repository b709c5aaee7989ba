"""Speech runs against the emulator: audio files written whole, rows pointing at them."""

from __future__ import annotations

import hashlib
import io
import wave
from pathlib import Path

import pytest

from pipeline.emulator.audio import speech_audio
from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, write_job, write_rows

TEXTS = [{"id": "tts/001", "text": "Welcome to the quarterly planning meeting."},
         {"id": "tts/002", "text": "Your order has shipped."},
         {"id": "tts/003", "text": "Please hold. [[fault:500:1]]"}]


@pytest.mark.parametrize("fmt", ["wav", "mp3", "pcm"])
def test_speech_files(tmp_path: Path, emulator, fmt: str) -> None:
    spec = write_job(tmp_path, emulator.url, "speech", input_path=write_rows(tmp_path / "texts.jsonl", TEXTS),
                     params={"response_format": fmt, "speed": 1.25}, service={"deployment": "tts"},
                     limits={"tokens_per_minute": 1})  # speech is charged no tokens
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    out = tmp_path / "out"
    records = {r["id"]: r for r in read_dataset(out / "results")}
    assert sorted(records) == [t["id"] for t in TEXTS]
    for row in TEXTS:
        record = records[row["id"]]
        data = (out / record["path"]).read_bytes()
        assert record["path"] == f"audio/{row['id']}.{fmt}"
        assert data == speech_audio(row["text"], fmt, 1.25)
        assert (record["bytes"], record["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert records["tts/003"]["attempts"] == 2  # a retried answer still writes one whole file
    if fmt == "wav":
        with wave.open(io.BytesIO((out / "audio" / "tts" / "001.wav").read_bytes())) as reader:
            assert reader.getnframes() > 0
    assert emulator.stats()["tokens_charged"] == 0 and not list(out.rglob("*.tmp"))
