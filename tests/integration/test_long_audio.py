"""Recordings longer or bigger than one upload, against the emulator (which decodes every upload and answers
with segments that follow its real speech regions): cut at silences, sent as chunks, stitched into one row
per file with times true to the recording; refusals as too long or too large cut shorter; a kill in the
middle of a file resumes without sending an answered chunk again; broken files fail alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.audio import samples
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread
from pipeline.emulator.transcripts import words_for_pitch
from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..servers.misbehaving import MisbehavingServer, json_answer
from .conftest import read_dataset, run_cli, write_job

TOLERANCE_S = 0.3  # the bound on stitched times against the truth
CHUNK_S = 20.0  # short chunks keep these recordings short


def recording(path: Path, seconds: float, seed: int, speakers: int = 1, **options: Any) -> samples.Script:
    # Sentences of 2-4 s: every 5 s window of the cut search holds a pause, so every cut is in a silence.
    plan = samples.script(seconds, speakers=speakers, seed=seed, sentence_s=(2.0, 4.0), pause_s=(0.6, 1.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    samples.write(path, plan, **options)
    return plan


def long_audio_job(tmp_path: Path, url: str, folder: Path, *, params: dict[str, Any] | None = None,
                   audio: dict[str, Any] | None = None, deployment: str = "whisper",
                   sidecars: list[str] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = write_job(tmp_path, url, "transcription", input_path=folder, inputs={"glob": "**/*"},
                     params=params or {"response_format": "verbose_json", "timestamp_granularities": ["segment"]},
                     output={"sidecars": sidecars or []}, service={"deployment": deployment},
                     limits={"concurrency": 4, "timeout_s": 20})
    audio = {"max_chunk_seconds": CHUNK_S, **(audio or {})}
    spec.write_text(spec.read_text() + "[audio]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in audio.items()))
    return spec


def _toml(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def check_against_truth(record: dict[str, Any], plan: samples.Script) -> None:
    """One segment per sentence, each within TOLERANCE_S of it, reading the sentence's words: nothing lost,
    nothing heard twice where chunks meet."""
    segments = record["segments"]
    assert len(segments) == len(plan.sentences), (len(segments), len(plan.sentences))
    for segment, sentence in zip(segments, plan.sentences, strict=True):
        assert abs(segment["start"] - sentence.start) <= TOLERANCE_S, (segment, sentence)
        assert abs(segment["end"] - sentence.end) <= TOLERANCE_S, (segment, sentence)
    assert [s["id"] for s in segments] == list(range(len(segments)))
    expected = " ".join(" ".join(words_for_pitch(s.pitch, s.duration)) for s in plan.sentences)
    assert record["text"].split() == expected.split()
    assert abs(record["duration"] - plan.duration) <= 0.1


def test_long_recordings_in_four_formats_are_cut_at_silences_and_stitched(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plans = {
        "meeting.wav": recording(folder / "meeting.wav", 70, seed=1, rate=44_100, channels=2),
        "talk.mp3": recording(folder / "talk.mp3", 65, seed=2),
        "lecture.m4a": recording(folder / "lecture.m4a", 50, seed=3),
        "voice.ogg": recording(folder / "voice.ogg", 45, seed=4),
        "short/note.mp3": recording(folder / "short" / "note.mp3", 8, seed=5),
    }
    # Every upload must stay within the chunk length: the emulator refuses anything longer.
    with EmulatorThread(EmulatorConfig(max_audio_seconds=CHUNK_S + 0.5)) as emulator:
        spec = long_audio_job(tmp_path, emulator.url, folder, sidecars=["srt", "txt"])
        result = run_job(load_spec(spec))
        stats = emulator.stats()
    assert result.exit_code == 0, result.message
    records = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    assert sorted(records) == sorted(plans)
    for name, plan in plans.items():
        record = records[name]
        check_against_truth(record, plan)
        expected_chunks = 1 if plan.duration <= CHUNK_S else int(plan.duration // (CHUNK_S * 0.75)) + 1
        assert 1 <= record["chunks"] <= expected_chunks and len(record["chunk_request_ids"]) == record["chunks"]
        assert len(set(record["chunk_request_ids"])) == record["chunks"]
        srt = (tmp_path / "out" / "sidecars" / f"{name}.srt").read_text()
        assert srt.count(" --> ") == len(plan.sentences)
    assert records["meeting.wav"]["chunks"] >= 4
    assert stats["by_op"] == {"audio/transcriptions": sum(r["chunks"] for r in records.values())}
    assert result.summary["requests"] == stats["by_op"]["audio/transcriptions"]  # requests, not rows
    assert stats["by_status"].get("400", 0) == 0
    assert not list((tmp_path / "out" / "chunks").rglob("*"))  # saved chunks go once their rows commit


def test_chunks_refused_as_too_long_or_too_large_are_cut_shorter(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plan = recording(folder / "call.flac", 60, seed=7)
    # An Azure deployment named "stt" tells no model: chunks of 40 s go, the service says its maximum is 20 s.
    with EmulatorThread(EmulatorConfig(max_audio_seconds=20)) as emulator:
        spec = long_audio_job(tmp_path / "a", emulator.url, folder, deployment="stt", audio={"max_chunk_seconds": 40})
        result = run_job(load_spec(spec))
        refused = emulator.stats()["by_status"].get("400", 0)
    assert result.exit_code == 0, result.message
    (record,) = read_dataset(tmp_path / "a" / "out" / "results")
    check_against_truth(record, plan)
    assert refused >= 1 and record["chunks"] >= 4
    # Too large: a 413 for anything over 60 kB (an Ogg/Opus chunk of 20 s is about 80 kB).
    with EmulatorThread(EmulatorConfig(max_audio_bytes=60_000)) as emulator:
        spec = long_audio_job(tmp_path / "b", emulator.url, folder)
        result = run_job(load_spec(spec))
        too_large = emulator.stats()["by_status"].get("413", 0)
    assert result.exit_code == 0, result.message
    (record,) = read_dataset(tmp_path / "b" / "out" / "results")
    check_against_truth(record, plan)
    assert too_large >= 1


def test_small_files_are_compressed_unless_turned_off(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plan = recording(folder / "memo.wav", 15, seed=8, rate=44_100, channels=2)
    size = (folder / "memo.wav").stat().st_size
    uploaded = {}
    for compress in (True, False):
        with EmulatorThread(EmulatorConfig()) as emulator:
            spec = long_audio_job(tmp_path / str(compress), emulator.url, folder, audio={"compress": compress})
            assert run_job(load_spec(spec)).exit_code == 0
            uploaded[compress] = emulator.stats()["upload_bytes"]
        (record,) = read_dataset(tmp_path / str(compress) / "out" / "results")
        check_against_truth(record, plan)
        assert record["chunks"] == 1
    assert uploaded[False] >= size and uploaded[True] * 8 < size  # 44.1 kHz stereo WAV -> 16 kHz mono Opus


def test_broken_recordings_fail_alone_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    recording(folder / "good.mp3", 30, seed=9)
    recording(folder / "whole.m4a", 40, seed=10)
    data = (folder / "whole.m4a").read_bytes()
    (folder / "cut.flac").write_bytes(_flac_head(tmp_path) + b"\x00" * 5000)
    (folder / "noise.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 400)
    (folder / "whole.m4a").write_bytes(data[: len(data) * 2 // 5])  # truncated: its index is at the end
    with EmulatorThread(EmulatorConfig()) as emulator:
        spec = long_audio_job(tmp_path, emulator.url, folder)
        result = run_job(load_spec(spec))
    assert result.exit_code == 1
    assert [r["id"] for r in read_dataset(tmp_path / "out" / "results")] == ["good.mp3"]
    failures = {f["id"]: f for f in read_dataset(tmp_path / "out" / "failures")}
    assert set(failures) == {"cut.flac", "noise.mp3", "whole.m4a"}
    for failure in failures.values():
        assert failure["message"] and "\n" not in failure["message"] and "Traceback" not in failure["message"]


def _flac_head(tmp_path: Path) -> bytes:
    """The first kilobytes of a real FLAC file: a valid header, then the file stops."""
    source = tmp_path / "source.flac"
    recording(source, 30, seed=11)
    head = source.read_bytes()[:4096]
    source.unlink()
    return head


@pytest.mark.timeout(180)
def test_a_kill_in_the_middle_of_a_recording_resumes_without_sending_answered_chunks(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plan = recording(folder / "podcast.mp3", 150, seed=12)
    with EmulatorThread(EmulatorConfig()) as emulator:
        spec = long_audio_job(tmp_path, emulator.url, folder)
        killed = run_cli("run", str(spec), env={"PIPELINE_CRASH_AT": "chunk.saved:3"})
        assert killed.returncode == -9, killed.stderr[-2000:]
        assert not read_dataset(tmp_path / "out" / "results")
        sent_before = emulator.stats()["by_op"]["audio/transcriptions"]
        assert len(list((tmp_path / "out" / "chunks").rglob("*.json"))) == 3
        status = run_cli("status", str(spec))
        assert "long recordings in progress: 1, 3 chunks answered and saved" in status.stdout, status.stdout
        rerun = run_cli("run", str(spec))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        sent = emulator.stats()["by_op"]["audio/transcriptions"]
    (record,) = read_dataset(tmp_path / "out" / "results")
    check_against_truth(record, plan)
    assert sent_before == 3 and sent == record["chunks"]  # no answered chunk was sent again
    assert not list((tmp_path / "out" / "chunks").rglob("*"))


def test_speakers_keep_their_labels_across_chunks(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plan = recording(folder / "panel.wav", 80, seed=13, speakers=2)
    with EmulatorThread(EmulatorConfig(max_audio_seconds=CHUNK_S + 0.5)) as emulator:
        spec = long_audio_job(tmp_path, emulator.url, folder, deployment="gpt-4o-transcribe-diarize",
                              params={"response_format": "diarized_json"})
        result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    (record,) = read_dataset(tmp_path / "out" / "results")
    assert record["chunks"] >= 4
    labels: dict[int, set[str]] = {}
    for segment, sentence in zip(record["segments"], plan.sentences, strict=True):
        assert abs(segment["start"] - sentence.start) <= TOLERANCE_S
        labels.setdefault(sentence.speaker, set()).add(segment["speaker"])
    assert all(len(names) == 1 for names in labels.values()), labels  # one label per person, in every chunk
    assert labels[0] != labels[1]


def test_each_chunk_is_prompted_with_the_words_before_it(tmp_path: Path, monkeypatch) -> None:
    """A model that takes a prompt gets the job's own and the end of the previous chunk's transcript."""
    monkeypatch.setenv("STT_KEY", "sk-test-prompts")
    folder = tmp_path / "audio"
    recording(folder / "talk.wav", 50, seed=14)
    answers = [json_answer({"text": f"chunk {n} said words {n}a {n}b."}) for n in range(6)]
    with MisbehavingServer() as server:
        base = server.script("stt", *answers)
        spec = write_job(tmp_path, base, "transcription", input_path=folder, inputs={"glob": "**/*"},
                         params={"response_format": "json", "prompt": "Glossary: Kubernetes."},
                         service={"provider": "openai", "model": "whisper-1", "deployment": None,
                                  "api_key_env": "STT_KEY"}, limits={"concurrency": 2})
        spec.write_text(spec.read_text() + f"[audio]\nmax_chunk_seconds = {CHUNK_S}\n")
        result = run_job(load_spec(spec))
        bodies = [seen.body for seen in server.seen("stt")]
    assert result.exit_code == 0, result.message
    (record,) = read_dataset(tmp_path / "out" / "results")
    assert record["chunks"] == len(bodies) >= 3
    assert b'name="prompt"\r\n\r\nGlossary: Kubernetes.\r\n' in bodies[0]
    for n, body in enumerate(bodies[1:]):
        assert f'name="prompt"\r\n\r\nGlossary: Kubernetes. chunk {n} said words {n}a {n}b.\r\n'.encode() in body
    assert record["text"] == " ".join(f"chunk {n} said words {n}a {n}b." for n in range(len(bodies)))


def test_translation_of_a_long_recording_is_stitched_too(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    plan = recording(folder / "interview.mp3", 45, seed=15)
    with EmulatorThread(EmulatorConfig(max_audio_seconds=CHUNK_S + 0.5)) as emulator:
        spec = long_audio_job(tmp_path, emulator.url, folder, params={"response_format": "verbose_json"})
        spec.write_text(spec.read_text().replace('endpoint = "transcription"', 'endpoint = "translation"'))
        result = run_job(load_spec(spec))
        sent = emulator.stats()["by_op"]
    assert result.exit_code == 0, result.message
    (record,) = read_dataset(tmp_path / "out" / "results")
    check_against_truth(record, plan)
    assert sent == {"audio/translations": record["chunks"]} and record["chunks"] >= 3
