"""Transcription/translation endpoint: audio checks, multipart building, answer parsing, sidecars; no server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.endpoints.audio_check import (
    CONTENT_TYPES,
    HEADER_BYTES,
    MAX_AUDIO_BYTES,
    AudioFileError,
    audio_facts_problem,
    content_matches,
    extension_of,
)
from pipeline.endpoints.base import HttpResponse, Item, Request, RowError
from pipeline.endpoints.files import FileFacts, FileNeed
from pipeline.endpoints.subtitles import Cue, parse_cues, parse_stamp, plain_text, to_srt, to_vtt
from pipeline.endpoints.transcription import Transcription, Translation, form_fields
from pipeline.errors import InvalidResponseError, SpecError
from pipeline.sinks.files import OutputFiles
from pipeline.sinks.outputs import write_files
from pipeline.sources.base import Row
from pipeline.sources.files import RowFiles
from pipeline.spec import parse_spec

ONE_ROW = Request("test", [Item(Row("a", {}, 1), None)])  # what parse needs of a request: one input

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad" / "audio_bad"
WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "

VERBOSE = {
    "task": "transcribe", "language": "english", "duration": 4.5, "text": " Hello there. General Kenobi.",
    "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 2.0, "text": " Hello there.", "tokens": [1]},
                 {"id": 1, "seek": 0, "start": 2.0, "end": 4.5, "text": " General Kenobi.", "tokens": [2]}],
    "words": [{"word": "Hello", "start": 0.0, "end": 0.8}, {"word": "there", "start": 0.8, "end": 2}],
}
SRT = "1\n00:00:00,000 --> 00:00:02,000\nHello there.\n\n2\n00:00:02,000 --> 00:00:04,500\nGeneral Kenobi.\n\n"
VTT = "WEBVTT\n\n00:00.000 --> 00:02.000 align:start\nHello there.\n\n00:00:02.000 --> 00:00:04.500\nGeneral\nKenobi.\n"


def make(tmp_path: Path, params: dict | None = None, endpoint: str = "transcription", sidecars: list | None = None,
         inputs: dict | None = None) -> Transcription:
    raw = {"name": "t", "endpoint": endpoint, "input": {"path": str(tmp_path), **(inputs or {})},
           "output": {"path": str(tmp_path / "out"), "sidecars": sidecars or []}, "params": params or {}}
    cls = Translation if endpoint == "translation" else Transcription
    return cls(parse_spec(raw, tmp_path / "job.toml", env={}))


def answer(body: bytes | str | dict) -> HttpResponse:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    return HttpResponse(200, {}, raw, 0.1, "req-1")


def check_audio_file(path: Path) -> int:
    """What a run does for an audio file: the source side reads its size and head, the endpoint judges them."""
    need = FileNeed("audio", str(path), head_bytes=HEADER_BYTES)
    return audio_facts_problem(str(path), RowFiles().read(need) if extension_of(str(path)) in CONTENT_TYPES else None)


def prepared(endpoint: Transcription, row: Row) -> Item:
    """prepare() after the source side has read the files the row needs, as on the run's reader thread."""
    return endpoint.prepare(RowFiles().attach(row, endpoint.needs(row)))


def folder_row(path: Path, root: Path) -> Row:
    return Row(path.relative_to(root).as_posix(), {"path": str(path), "relpath": path.name}, 1)


@pytest.mark.parametrize(("extension", "head", "ok"), [
    ("wav", WAV_HEAD, True),
    ("wav", b"RIFF\x00\x00\x00\x00AVI LIST", False),
    ("flac", b"fLaC\x00\x00\x00\x22", True),
    ("ogg", b"OggS\x00\x02", True),
    ("mp3", b"ID3\x04\x00\x00", True),
    ("mp3", b"\xff\xfb\x90\x64", True),  # MPEG-1 layer III frame
    ("mp3", b"\xff\xf3\x38\xc4", True),  # MPEG-2 layer III frame
    ("mp3", b"\xff\xe9\x00\x00", False),  # reserved MPEG version
    ("mpga", b"\xff\xfb\x90\x64", True),
    ("mpeg", b"\x00\x00\x01\xba\x44", True),
    ("mp4", b"\x00\x00\x00\x20ftypisom", True),
    ("m4a", b"\x00\x00\x00\x1cftypM4A ", True),
    ("m4a", b"\x00\x00\x00\x1cmoov", False),
    ("webm", b"\x1a\x45\xdf\xa3\x9f", True),
    ("webm", b"OggS", False),
    ("mp3", b"This is a text file", False),
    ("txt", b"anything", False),
])
def test_magic_bytes(extension: str, head: bytes, ok: bool) -> None:
    assert content_matches(extension, head) is ok


@pytest.mark.parametrize(("name", "reason"), [
    ("zero.wav", "empty"),
    ("mislabeled.mp3", "not mp3 audio"),
    ("mislabeled.wav", "not wav audio"),
    ("good.expected.txt", "unsupported audio type '.txt'"),
    ("missing.wav", "cannot read"),
])
def test_bad_audio_files_refused(name: str, reason: str) -> None:
    with pytest.raises(AudioFileError, match=reason):
        check_audio_file(BAD / name)


def test_good_audio_accepted_and_oversize_refused(tmp_path: Path) -> None:
    assert check_audio_file(BAD / "good.wav") == (BAD / "good.wav").stat().st_size
    assert check_audio_file(BAD / "sub" / "good2.flac") > 0
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:  # sparse: costs no disk
        handle.write(WAV_HEAD)
        handle.truncate(MAX_AUDIO_BYTES + 1)
    with pytest.raises(AudioFileError, match="over the service's 25 MB upload limit"):
        check_audio_file(big)
    os.truncate(big, MAX_AUDIO_BYTES)
    assert check_audio_file(big) == MAX_AUDIO_BYTES


def test_prepare_folder_row(tmp_path: Path) -> None:
    endpoint = make(tmp_path)
    item = prepared(endpoint, folder_row(BAD / "good.wav", BAD))
    assert item.tokens == 0 and item.payload.content_type == "audio/wav"
    with pytest.raises(RowError, match=r"row 'mislabeled\.wav'.*not wav audio"):
        prepared(endpoint, folder_row(BAD / "mislabeled.wav", BAD))


def test_prepare_table_row_resolves_against_table_folder(tmp_path: Path) -> None:
    table = tmp_path / "files.jsonl"
    table.write_text("")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(WAV_HEAD + bytes(100))
    endpoint = make(tmp_path, inputs={"path": str(table), "file": "audio_path"})
    item = prepared(endpoint, Row("a", {"audio_path": "audio/a.wav"}, 1))
    assert item.payload.path == str(tmp_path / "audio" / "a.wav")
    absolute = prepared(endpoint, Row("b", {"audio_path": str(BAD / "good.wav")}, 2))
    assert absolute.payload.path == str(BAD / "good.wav")
    with pytest.raises(RowError, match="no 'audio_path' value"):
        prepared(endpoint, Row("c", {}, 3))
    with pytest.raises(SpecError, match=r"input\.file: required for a table input"):
        make(tmp_path, inputs={"path": str(table)})


def test_build_streams_file_and_repeats_granularities(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"],
                               "language": "en", "temperature": 0.2, "prompt": "Names: Kenobi."})
    assert endpoint.counts_tokens is False
    request = endpoint.build([prepared(endpoint, folder_row(BAD / "good.wav", BAD))])
    assert request.tokens == 0 and request.json is None and request.accept == "json"
    assert request.form is not None
    parts = request.form()
    file = parts[0]
    assert (file.name, file.path, file.value, file.filename) == ("file", str(BAD / "good.wav"), None, "good.wav")
    fields = [(p.name, p.value) for p in parts[1:]]
    assert fields == [("response_format", "verbose_json"), ("timestamp_granularities[]", "word"),
                      ("timestamp_granularities[]", "segment"), ("language", "en"), ("temperature", "0.2"),
                      ("prompt", "Names: Kenobi.")]
    assert request.form()[0] is not file  # rebuilt for every attempt


def test_form_fields_values() -> None:
    assert [(p.name, p.value) for p in form_fields({"a": True, "b": 3, "c": ["x"]})] == [
        ("a", "true"), ("b", "3"), ("c[]", "x")]


@pytest.mark.parametrize(("params", "sidecars", "endpoint", "message"), [
    ({"response_format": "docx"}, [], "transcription", "params.response_format: must be one of"),
    ({"timestamp_granularities": ["word"]}, [], "transcription", "needs response_format"),
    ({"response_format": "verbose_json", "timestamp_granularities": ["char"]}, [], "transcription", "word and/or"),
    ({"temperature": 1.5}, [], "transcription", "params.temperature: must be from 0 to 1"),
    ({"response_format": "text"}, ["json"], "transcription", "a json sidecar needs"),
    ({"response_format": "json"}, ["srt"], "transcription", "srt/vtt sidecars need"),
    ({"response_format": "verbose_json", "timestamp_granularities": ["word"]}, ["vtt"], "transcription",
     "srt/vtt sidecars need"),
    ({"language": "fr"}, [], "translation", "params.language: is not accepted"),
])
def test_spec_errors(tmp_path: Path, params: dict, sidecars: list, endpoint: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make(tmp_path, params, endpoint, sidecars)


def test_parse_verbose_json(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"]})
    (result,) = endpoint.parse(ONE_ROW, answer(VERBOSE))
    assert result["text"] == "Hello there. General Kenobi."
    assert (result["language"], result["duration"], result["format"]) == ("english", 4.5, "verbose_json")
    assert result["segments"][1] == {"id": 1, "start": 2.0, "end": 4.5, "text": "General Kenobi.", "speaker": None}
    assert result["words"][1] == {"word": "there", "start": 0.8, "end": 2.0}


def test_parse_json_and_text(tmp_path: Path) -> None:
    (result,) = make(tmp_path).parse(ONE_ROW, answer({"text": "Hi."}))
    assert result["text"] == "Hi." and result["segments"] is None and result["format"] == "json"
    (result,) = make(tmp_path, {"response_format": "text"}).parse(ONE_ROW, answer("Hi there.\n"))
    assert result == {"text": "Hi there.", "format": "text", "chunks": 1, "chunk_request_ids": ["req-1"]}
    assert make(tmp_path).usage([result]).audio_seconds == 0.0


@pytest.mark.parametrize(("fmt", "body"), [("srt", SRT), ("vtt", VTT)])
def test_parse_subtitles(tmp_path: Path, fmt: str, body: str) -> None:
    (result,) = make(tmp_path, {"response_format": fmt}).parse(ONE_ROW, answer(body))
    assert result["text"] == "Hello there. General Kenobi."
    assert result["subtitles"] == body


@pytest.mark.parametrize(("params", "body"), [
    ({}, "not json"),
    ({}, {"segments": []}),
    ({"response_format": "verbose_json"}, {"text": "x", "segments": [{"start": "soon"}]}),
    ({"response_format": "srt"}, "this is not a subtitle file"),
    ({"response_format": "text"}, b"\xff\xfe\x00"),
])
def test_parse_refuses_malformed_answers(tmp_path: Path, params: dict, body: object) -> None:
    with pytest.raises(InvalidResponseError):
        make(tmp_path, params).parse(ONE_ROW, answer(body))


async def test_finish_writes_sidecars(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"response_format": "verbose_json"}, sidecars=["txt", "srt", "vtt", "json"])
    request = endpoint.build([prepared(endpoint, folder_row(BAD / "sub" / "good2.flac", BAD))])
    results = endpoint.parse(request, answer(VERBOSE))
    store = OutputFiles(tmp_path / "out", download=None)  # type: ignore[arg-type]
    (result,) = await write_files(endpoint, request, results, store)
    assert result["sidecars"] == [f"sidecars/sub/good2.flac.{ext}" for ext in ("txt", "srt", "vtt", "json")]
    assert "_raw" not in result
    folder = tmp_path / "out" / "sidecars" / "sub"
    assert (folder / "good2.flac.txt").read_text() == "Hello there. General Kenobi.\n"
    assert (folder / "good2.flac.srt").read_text() == SRT.rstrip("\n") + "\n"
    assert parse_cues((folder / "good2.flac.vtt").read_text())[1] == Cue(2.0, 4.5, "General Kenobi.")
    assert json.loads((folder / "good2.flac.json").read_bytes()) == VERBOSE


async def test_finish_converts_srt_to_vtt_and_keeps_srt_verbatim(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"response_format": "srt"}, "translation", sidecars=["srt", "vtt"])
    request = endpoint.build([prepared(endpoint, folder_row(BAD / "good.wav", BAD))])
    results = endpoint.parse(request, answer(SRT))
    await write_files(endpoint, request, results, OutputFiles(tmp_path / "out", download=None))  # type: ignore[arg-type]
    assert (tmp_path / "out" / "sidecars" / "good.wav.srt").read_text() == SRT
    assert (tmp_path / "out" / "sidecars" / "good.wav.vtt").read_text().startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nHello there.\n")
    assert endpoint.op == "audio/translations"


def test_subtitle_round_trip() -> None:
    cues = [Cue(0.0, 1.25, "one"), Cue(3661.5, 3662.0, "two\nlines")]
    assert parse_cues(to_srt(cues)) == cues
    assert parse_cues(to_vtt(cues)) == cues
    assert plain_text(cues) == "one two lines"
    assert parse_stamp("01:02.5") == 62.5 and parse_stamp("nope") is None


def test_prepare_from_facts_alone_no_disk(tmp_path: Path) -> None:
    """The endpoint judges what the source side read; it reads nothing itself."""
    endpoint = make(tmp_path)
    row = Row("talk.wav", {"path": "/nowhere/talk.wav", "relpath": "talk.wav"}, 1)
    assert endpoint.needs(row) == [FileNeed("audio", "/nowhere/talk.wav", head_bytes=HEADER_BYTES)]
    read = Row(row.id, row.fields, 1, files={"audio": FileFacts("talk.wav", "/nowhere/talk.wav", 1000, WAV_HEAD)})
    item = endpoint.prepare(read)
    assert (item.payload.path, item.payload.size, item.payload.content_type) == ("/nowhere/talk.wav", 1000, "audio/wav")
    gone = Row(row.id, row.fields, 1, files={"audio": FileFacts("talk.wav", "/nowhere/talk.wav", 0, error="gone")})
    with pytest.raises(RowError, match="cannot read the audio file"):
        endpoint.prepare(gone)
    assert endpoint.needs(Row("notes.txt", {"path": "/nowhere/notes.txt"}, 2)) == []  # refused unread


def make_for(tmp_path: Path, model: str, params: dict | None = None, audio: dict | None = None,
             endpoint: str = "transcription") -> Transcription:
    raw = {"name": "t", "endpoint": endpoint, "input": {"path": str(tmp_path)}, "output": {"path": str(tmp_path / "o")},
           "service": {"provider": "openai", "model": model, "api_key_env": "K"}, "params": params or {}}
    if audio is not None:
        raw["audio"] = audio
    cls = Translation if endpoint == "translation" else Transcription
    return cls(parse_spec(raw, tmp_path / "job.toml", env={"K": "sk-test"}))


@pytest.mark.parametrize(("model", "params", "endpoint", "message"), [
    ("gpt-4o-transcribe", {"response_format": "verbose_json"}, "transcription",
     "gpt-4o-transcribe answers only json or text, not 'verbose_json'"),
    ("gpt-4o-mini-transcribe-2025-12-15", {"response_format": "srt"}, "transcription", "answers only json or text"),
    ("whisper-1", {"response_format": "diarized_json"}, "transcription", "whisper answers only"),
    ("gpt-4o-transcribe-diarize", {"prompt": "names: Ada"}, "transcription", "does not take a prompt"),
    ("gpt-4o-transcribe", {"response_format": "json", "timestamp_granularities": ["word"]}, "transcription",
     "timestamp_granularities"),
    ("gpt-4o-transcribe", {}, "translation", "gpt-4o-transcribe does not translate"),
])
def test_a_model_refuses_what_it_does_not_accept_at_validate_time(tmp_path: Path, model: str, params: dict,
                                                                  endpoint: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        make_for(tmp_path, model, params, endpoint=endpoint)
    assert "\n" not in str(caught.value) and "job.toml" in str(caught.value)


def test_diarize_gets_chunking_strategy_and_no_prompt_context(tmp_path: Path) -> None:
    endpoint = make_for(tmp_path, "gpt-4o-transcribe-diarize", {"response_format": "diarized_json"})
    assert endpoint.params["chunking_strategy"] == "auto" and endpoint.max_chunk_s == 1380
    assert endpoint.chunk_prompt("previous words") is None
    whisper = make_for(tmp_path, "whisper-1", {"prompt": "Glossary: Kubernetes."}, audio={"max_chunk_seconds": 600})
    assert whisper.max_chunk_s == 600
    assert whisper.chunk_prompt("so we deployed it") == "Glossary: Kubernetes. so we deployed it"


def test_upload_plans(tmp_path: Path) -> None:
    endpoint = make_for(tmp_path, "gpt-4o-mini-transcribe")
    assert endpoint.plan_upload(40_000_000, 3000.0, 12_000_000).chunked  # over 25 MB
    assert endpoint.plan_upload(5_000_000, 1600.0, 6_000_000).chunked  # over the model's 1500 s
    assert endpoint.plan_upload(10_000_000, 300.0, 1_300_000).chunked  # a WAV: re-encoding is 8x smaller
    assert not endpoint.plan_upload(2_400_000, 300.0, 1_300_000).chunked  # an mp3: not worth it
    assert not endpoint.plan_upload(500_000, 15.0, 60_000).chunked  # under 1 MiB: not worth the CPU
    assert not endpoint.worth_probing(500_000) and endpoint.worth_probing(2_000_000)
    assert make_for(tmp_path, "whisper", audio={"max_chunk_seconds": 30}).worth_probing(500_000)
    as_is = make_for(tmp_path, "whisper", audio={"compress": False})
    assert not as_is.plan_upload(10_000_000, 300.0, 1_300_000).chunked


def test_audio_section_is_for_audio_endpoints_only(tmp_path: Path) -> None:
    raw = {"name": "t", "endpoint": "embeddings", "input": {"path": str(tmp_path / "x.jsonl"), "text": "t"},
           "output": {"path": str(tmp_path / "o")}, "audio": {"compress": False}}
    with pytest.raises(SpecError, match="audio: is read by transcription and translation only"):
        parse_spec(raw, tmp_path / "job.toml", env={})
    with pytest.raises(SpecError, match="max_chunk_seconds: must be >= 10"):
        make_for(tmp_path, "whisper", audio={"max_chunk_seconds": 5})


def test_diarized_segments_keep_speakers_and_renumber(tmp_path: Path) -> None:
    endpoint = make_for(tmp_path, "gpt-4o-transcribe-diarize", {"response_format": "diarized_json"})
    body = {"text": "hi yo", "segments": [
        {"type": "transcript.text.segment", "id": "seg_0", "start": 0.1, "end": 1.0, "text": "hi", "speaker": "A"},
        {"type": "transcript.text.segment", "id": "seg_1", "start": 1.2, "end": 2.0, "text": "yo", "speaker": "B"}]}
    (result,) = endpoint.parse(ONE_ROW, answer(body))
    assert [(s["id"], s["speaker"]) for s in result["segments"]] == [(0, "A"), (1, "B")]
    nan = {"text": "x", "segments": [{"start": float("nan"), "end": 1.0, "text": "x"}]}
    with pytest.raises(InvalidResponseError, match="not a finite number"):
        endpoint.parse(ONE_ROW, answer(json.dumps(nan)))
    negative = {"text": "x", "segments": [{"start": -3, "end": 1.0, "text": "x"}]}
    with pytest.raises(InvalidResponseError, match="timings are malformed"):
        endpoint.parse(ONE_ROW, answer(negative))
