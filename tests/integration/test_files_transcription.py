"""Transcription and translation runs against the emulator: multipart uploads of real files,
bad files refused before upload, every response format, sidecar files, table inputs. Files are sent as
they are here ([audio] compress = false): tests/integration/test_long_audio.py covers re-encoding."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.transcripts import transcript_for
from pipeline.endpoints.audio_check import MAX_AUDIO_BYTES
from pipeline.endpoints.subtitles import parse_cues
from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import ROOT, read_dataset, write_job, write_rows

AUDIO = ROOT / "sample_data" / "audio"
BAD = ROOT / "tests" / "data" / "bad" / "audio_bad"
GLOB = "**/*.{wav,flac,ogg,mp3,m4a,webm}"
GOOD = ["en/approved.mp3", "en/meetings/planning/hiring.ogg", "en/meetings/planning/roadmap.wav",
        "en/meetings/retro.flac", "en/meetings/standup_01.wav", "fr/meteo.wav"]
BAD_FILES = {"bad/zero.wav": "empty", "bad/mislabeled.mp3": "not mp3 audio", "bad/mislabeled.wav": "not wav audio"}
HUGE = "bad/huge.wav"  # over 25 MB: decoded and sent re-encoded, no longer refused


def wav_header(size: int, rate: int = 48_000, channels: int = 2) -> bytes:
    """A 16-bit PCM WAV header whose RIFF and data sizes declare a file of `size` bytes, so that probing
    reads the header alone (one declaring less made FFmpeg scan the sparse rest for more chunks). 16-bit
    stereo at 48 kHz keeps the silence it declares quick to decode (2 minutes for 25 MB)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + \
        b"data" + struct.pack("<I", size - 44)


def audio_folder(root: Path, good: list[str] = GOOD, bad: bool = True) -> Path:
    """Nested folders of real recordings (with their .expected.txt neighbours) and broken files."""
    for relative in good:
        for source in (AUDIO / relative, (AUDIO / relative).with_suffix(".expected.txt")):
            target = root / source.relative_to(AUDIO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    if bad:
        (root / "bad").mkdir()
        for name in ("zero.wav", "mislabeled.mp3", "mislabeled.wav"):
            shutil.copyfile(BAD / name, root / "bad" / name)
        with open(root / "bad" / "huge.wav", "wb") as handle:  # sparse: no disk used
            handle.write(wav_header(MAX_AUDIO_BYTES + 1024))
            handle.truncate(MAX_AUDIO_BYTES + 1024)
    return root


def transcription_job(tmp_path: Path, url: str, folder: Path, params: dict, sidecars: list[str] | None = None,
                      endpoint: str = "transcription", inputs: dict | None = None) -> Path:
    spec = write_job(tmp_path, url, endpoint, input_path=folder, inputs=inputs or {"glob": GLOB},
                     params=params, output={"sidecars": sidecars or []}, service={"deployment": "whisper"},
                     limits={"concurrency": 4, "tokens_per_minute": 1})  # audio is charged no tokens
    spec.write_text(spec.read_text() + "[audio]\ncompress = false\n")
    return spec


def test_folder_verbose_json_with_sidecars_and_bad_files(tmp_path: Path, emulator) -> None:
    folder = audio_folder(tmp_path / "audio")
    params = {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"], "language": "en"}
    spec = transcription_job(tmp_path, emulator.url, folder, params, ["txt", "srt", "vtt", "json"])
    result = run_job(load_spec(spec))
    assert result.exit_code == 1  # some rows failed
    out = tmp_path / "out"
    failures = {f["id"]: f for f in read_dataset(out / "failures")}
    assert set(failures) == set(BAD_FILES)
    for row_id, reason in BAD_FILES.items():
        assert reason in failures[row_id]["message"] and failures[row_id]["stage"] == "input"
    records = {r["id"]: r for r in read_dataset(out / "results")}
    huge = records.pop(HUGE)  # a WAV header and zeros: silence, its duration what the header declares
    assert huge["text"] == "" and huge["chunks"] == 1 and huge["format"] == "verbose_json"
    assert emulator.stats()["by_op"] == {"audio/transcriptions": len(GOOD) + 1}  # bad files never uploaded
    assert sorted(records) == GOOD
    for row_id, record in records.items():
        expected = transcript_for((folder / row_id).read_bytes(), "transcribe", "en")  # the whole file arrived
        assert record["text"] == expected.text and record["duration"] == expected.duration
        assert [w["word"] for w in record["words"]] == [w.word for w in expected.words]
        assert record["language"] == "english" and record["format"] == "verbose_json"
        check_sidecars(out, row_id, record)


def check_sidecars(out: Path, row_id: str, record: dict) -> None:
    base = out / "sidecars" / row_id
    assert record["sidecars"] == [f"sidecars/{row_id}.{ext}" for ext in ("txt", "srt", "vtt", "json")]
    assert base.with_name(base.name + ".txt").read_text() == record["text"] + "\n"
    segments = [(s["start"], s["end"], s["text"]) for s in record["segments"]]
    for ext in ("srt", "vtt"):
        cues = parse_cues(base.with_name(f"{base.name}.{ext}").read_text())
        assert [(c.start, c.end, c.text) for c in cues] == segments
    assert json.loads(base.with_name(base.name + ".json").read_text())["words"]


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt"])
def test_every_response_format(tmp_path: Path, emulator, fmt: str) -> None:
    folder = audio_folder(tmp_path / "audio", GOOD[:2], bad=False)
    sidecars = ["txt", "srt", "vtt"] if fmt in ("srt", "vtt") else ["txt"]
    spec = transcription_job(tmp_path, emulator.url, folder, {"response_format": fmt}, sidecars)
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    for record in read_dataset(tmp_path / "out" / "results"):
        expected = transcript_for((folder / record["id"]).read_bytes())
        assert record["text"] == expected.text and record["format"] == fmt
        assert record["segments"] is None and record["language"] is None
        if fmt in ("srt", "vtt"):
            assert record["subtitles"].startswith("WEBVTT" if fmt == "vtt" else "1\n")
            srt = (tmp_path / "out" / "sidecars" / f"{record['id']}.srt").read_text()
            vtt = (tmp_path / "out" / "sidecars" / f"{record['id']}.vtt").read_text()
            assert parse_cues(srt) == parse_cues(vtt) == parse_cues(record["subtitles"])
        else:
            assert record["subtitles"] is None


def test_table_input_translation_and_resume(tmp_path: Path, emulator) -> None:
    folder = audio_folder(tmp_path / "data" / "audio", GOOD[-2:], bad=False)
    rows = [{"id": "a", "file": "audio/" + GOOD[-1]}, {"id": "b", "file": str(folder / GOOD[-2])},
            {"id": "c", "file": "audio/missing.wav"}]
    table = write_rows(tmp_path / "data" / "files.jsonl", rows)
    spec = transcription_job(tmp_path, emulator.url, table, {"response_format": "verbose_json", "prompt": "Hi."},
                             ["txt", "srt"], endpoint="translation", inputs={"file": "file"})
    first = run_job(load_spec(spec))
    assert first.exit_code == 1
    records = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    assert sorted(records) == ["a", "b"]
    assert records["a"]["text"] == transcript_for((folder / GOOD[-1]).read_bytes(), "translate").text
    assert (tmp_path / "out" / "sidecars" / "a.srt").is_file()
    (failure,) = read_dataset(tmp_path / "out" / "failures")
    assert failure["id"] == "c" and "cannot read the audio file" in failure["message"]
    second = run_job(load_spec(spec))
    assert second.exit_code == 1 and second.summary["rows_skipped"] == 3  # "c" failed earlier and still stands
    assert second.summary["rows_failed_earlier"] == 1
    assert emulator.stats()["by_op"] == {"audio/translations": 2}


def test_a_file_removed_after_its_check_fails_alone_with_a_reason(tmp_path: Path, emulator, monkeypatch) -> None:
    """The file passed its checks, then vanished just before its upload: a failure row naming it,
    no traceback, and the other files go on."""
    from pipeline.client import transport

    folder = audio_folder(tmp_path / "audio", bad=False)
    doomed = folder / GOOD[1]
    read_parts = transport.read_parts

    async def remove_then_read(parts: list[Any]) -> list[Any]:
        if any(part.path == str(doomed) for part in parts):
            doomed.unlink()
        return await read_parts(parts)

    monkeypatch.setattr(transport, "read_parts", remove_then_read)
    spec = write_job(tmp_path, emulator.url, "transcription", input_path=folder,
                     inputs={"glob": GLOB}, service={"deployment": "whisper"})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    assert sorted(r["id"] for r in read_dataset(tmp_path / "out" / "results")) == sorted(set(GOOD) - {GOOD[1]})
    [failure] = read_dataset(tmp_path / "out" / "failures")
    assert failure["id"] == GOOD[1] and failure["stage"] == "input"
    assert "disappeared before it was sent" in failure["message"]
