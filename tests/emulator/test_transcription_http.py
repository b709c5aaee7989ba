"""Transcription over HTTP of real recordings (pipeline.audio.samples' tone bursts): segments follow the
speech, a sentence reads the same in any upload, per-model refusals, diarization and known speakers."""

from __future__ import annotations

import asyncio
import io
import time
import wave
from typing import Any

import aiohttp
import numpy as np
import pytest

from pipeline.audio import samples
from pipeline.audio.samples import Script, Sentence
from pipeline.emulator import hearing
from pipeline.emulator.ops import transcriptions
from pipeline.emulator.testing import AZURE_KEY_HEADERS, audio_form, azure_url, data_url, make_wav, recording
from pipeline.emulator.transcripts import words_for_pitch

# Sentence lengths are multiples of 0.4 s: 2.5 words a second is a whole number of words, far from rounding.
TWO_SENTENCES = Script((Sentence(0.5, 2.5, samples.pitch_for(0), 0), Sentence(3.3, 5.7, samples.pitch_for(1), 0)),
                       6.0)
CONVERSATION = Script((Sentence(0.4, 2.0, samples.pitch_for(0, 1), 1), Sentence(2.8, 4.4, samples.pitch_for(0), 0),
                       Sentence(5.2, 6.8, samples.pitch_for(1, 1), 1)), 7.2)


def form(audio: bytes, filename: str = "clip.wav", **fields: str | list[str]) -> aiohttp.FormData:
    return audio_form(audio, filename, "application/octet-stream", **fields)


async def post(session: aiohttp.ClientSession, url: str, data: aiohttp.FormData) -> tuple[int, Any]:
    async with session.post(url, data=data, headers=AZURE_KEY_HEADERS) as answer:
        body = await answer.json() if answer.content_type == "application/json" else await answer.text()
        return answer.status, body


def expected_text(sentence: Sentence) -> str:
    return " ".join(words_for_pitch(sentence.pitch, sentence.duration))


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
async def test_segments_follow_the_sentences(emulator, session, fmt: str) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    status, body = await post(session, url, form(recording(TWO_SENTENCES, fmt), f"talk.{fmt}",
                                                 response_format="verbose_json"))
    assert status == 200 and body["duration"] == pytest.approx(6.0, abs=0.1)
    assert len(body["segments"]) == len(TWO_SENTENCES.sentences)
    for segment, sentence in zip(body["segments"], TWO_SENTENCES.sentences, strict=True):
        assert segment["start"] == pytest.approx(sentence.start, abs=0.1)
        assert segment["end"] == pytest.approx(sentence.end, abs=0.1)
        assert segment["text"] == " " + expected_text(sentence)
    assert body["text"] == " ".join(expected_text(s) for s in TWO_SENTENCES.sentences)


def cut(plan: Script, start_s: float, end_s: float) -> bytes:
    """The WAV of part of a recording, as a chunker would upload it."""
    whole = np.concatenate(list(samples.render(plan)))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(samples.RATE)
        writer.writeframes(whole[int(start_s * samples.RATE) : int(end_s * samples.RATE)].tobytes())
    return out.getvalue()


async def test_a_sentence_reads_the_same_in_two_overlapping_uploads(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    shared = CONVERSATION.sentences[1]
    answers = [await post(session, url, form(cut(CONVERSATION, start, end), response_format="verbose_json"))
               for start, end in [(0.0, 5.0), (2.4, 7.2)]]
    (_, first), (_, second) = answers
    assert first["segments"][1]["text"] == second["segments"][0]["text"]
    assert first["segments"][1]["text"] == " " + expected_text(shared)
    assert first["segments"][1]["start"] == pytest.approx(second["segments"][0]["start"] + 2.4, abs=0.05)


@pytest.mark.parametrize(("route", "model", "fields", "message", "param"), [
    ("audio/transcriptions", "gpt-4o-transcribe", {"response_format": "verbose_json"},
     "response_format 'verbose_json' is not compatible with model 'gpt-4o-transcribe'. Use 'json' or 'text' instead.",
     "response_format"),
    ("audio/transcriptions", "gpt-4o-mini-transcribe", {"timestamp_granularities[]": ["word"]},
     "timestamp_granularities[] is not compatible with model 'gpt-4o-mini-transcribe'.", "timestamp_granularities"),
    ("audio/transcriptions", "whisper-1", {"response_format": "diarized_json"},
     "response_format 'diarized_json' is not compatible with model 'whisper-1'. Use 'json' or 'text' instead.",
     "response_format"),
    ("audio/transcriptions", "gpt-4o-transcribe-diarize", {"prompt": "Names: Ann, Bo."},
     "prompt is not supported for gpt-4o-transcribe-diarize", "prompt"),
    ("audio/translations", "gpt-4o-transcribe", {},
     "model 'gpt-4o-transcribe' does not support translations. Use 'whisper-1' instead.", "model"),
])
async def test_options_the_model_does_not_take(emulator, session, route: str, model: str, fields: dict,
                                              message: str, param: str) -> None:
    server = await emulator()
    for url in (azure_url(server.url, model, route), f"{server.url}/v1/{route}"):
        status, body = await post(session, url, form(make_wav(1.0), model=model, **fields))
        assert status == 400 and body["error"]["message"] == message and body["error"]["param"] == param


async def test_audio_longer_than_the_limit_is_refused_with_the_service_message(emulator, session) -> None:
    server = await emulator(max_audio_seconds=2.0)
    url = azure_url(server.url, "gpt-4o-transcribe", "audio/transcriptions")
    status, body = await post(session, url, form(make_wav(2.5)))
    assert status == 400 and body == {"error": {
        "message": "audio duration 2.500000 seconds is longer than 2 seconds which is the maximum for this model",
        "type": "invalid_request_error", "param": None, "code": "invalid_value"}}
    assert (await post(session, url, form(make_wav(1.5))))[0] == 200
    assert server.stats()["audio_refused"] == {"length": 1}


async def test_diarize_needs_chunking_strategy_past_30_seconds(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt-4o-transcribe-diarize", "audio/transcriptions")
    audio = make_wav(30.5)
    status, body = await post(session, url, form(audio, response_format="diarized_json"))
    assert status == 400
    assert body["error"]["message"] == "chunking_strategy is required for audio longer than 30 seconds"
    status, body = await post(session, url, form(audio, response_format="diarized_json", chunking_strategy="auto"))
    assert status == 200 and [s["speaker"] for s in body["segments"]] == ["A", "A"]  # 30.3 s of speech: two pieces


async def test_diarized_json_labels_speakers_by_first_appearance(emulator, session) -> None:
    server = await emulator()
    url = f"{server.url}/v1/audio/transcriptions"
    status, body = await post(session, url, form(recording(CONVERSATION), model="gpt-4o-transcribe-diarize",
                                                 response_format="diarized_json", chunking_strategy="auto"))
    assert status == 200 and body["task"] == "transcribe" and body["duration"] == pytest.approx(7.2)
    assert [s["speaker"] for s in body["segments"]] == ["A", "B", "A"]
    assert [s["id"] for s in body["segments"]] == ["seg_0", "seg_1", "seg_2"]
    assert {s["type"] for s in body["segments"]} == {"transcript.text.segment"}
    assert [s["text"] for s in body["segments"]] == [expected_text(s) for s in CONVERSATION.sentences]
    assert body["usage"] == {"type": "duration", "seconds": 8}


async def test_known_speaker_references_name_their_voices(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt-4o-transcribe-diarize", "audio/transcriptions")
    agent = data_url(make_wav(2.5, pitch=samples.pitch_for(7)))  # speaker 0's band, another sentence
    fields = {"response_format": "diarized_json", "known_speaker_names[]": ["agent"],
              "known_speaker_references[]": [agent]}
    status, body = await post(session, url, form(recording(CONVERSATION), **fields))
    assert status == 200 and [s["speaker"] for s in body["segments"]] == ["A", "agent", "A"]
    assert "usage" not in body  # OpenAI's routes only
    too_short = {**fields, "known_speaker_references[]": [data_url(make_wav(1.0))]}
    status, body = await post(session, url, form(recording(CONVERSATION), **too_short))
    assert status == 400 and "between 2 and 10 seconds" in body["error"]["message"]


async def test_an_upload_that_is_not_audio_gets_the_service_400(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    status, body = await post(session, url, form(b"This is a text file, not an MP3.\n", "notes.mp3"))
    assert status == 400 and body == {"error": {"message": "Audio file might be corrupted or unsupported",
                                                "type": "invalid_request_error", "param": "file",
                                                "code": "invalid_value"}}
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert (await post(session, url, form(png, "image.wav")))[0] == 400
    stats = server.stats()
    assert stats["audio_refused"] == {"undecodable": 2} and stats["by_status"] == {"400": 2}


async def test_gpt_4o_answers_json_with_token_usage_on_openai_routes(emulator, session) -> None:
    server = await emulator()
    status, body = await post(session, f"{server.url}/v1/audio/transcriptions",
                              form(make_wav(2.2), model="gpt-4o-mini-transcribe"))
    assert status == 200 and body["text"] == expected_text(Sentence(0.1, 2.1, samples.pitch_for(0), 0))
    assert body["usage"]["type"] == "tokens" and body["usage"]["total_tokens"] > 0


async def test_decoding_leaves_the_loop_free(emulator, session, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_hear(audio: bytes) -> hearing.Heard:
        time.sleep(0.5)  # a long recording's decode, holding its thread
        return hearing.hear(audio)

    monkeypatch.setattr(transcriptions, "hear", slow_hear)
    server = await emulator()
    upload = asyncio.ensure_future(post(session, azure_url(server.url, "whisper", "audio/transcriptions"),
                                        form(make_wav(1.0))))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    async with session.post(azure_url(server.url, "e", "embeddings"), json={"input": "hi"},
                            headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200
    assert time.monotonic() - started < 0.3 and not upload.done()
    assert (await upload)[0] == 200
