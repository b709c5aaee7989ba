"""Multipart transcription and translation, including the 25 MB limit (what is heard: test_transcription_http.py)."""

from __future__ import annotations

import aiohttp
import pytest

from pipeline.emulator.testing import AZURE_KEY_HEADERS, audio_form, azure_url, fault_marker, make_wav

form = audio_form


async def send(session: aiohttp.ClientSession, url: str, data: aiohttp.FormData) -> aiohttp.ClientResponse:
    async with session.post(url, data=data, headers=AZURE_KEY_HEADERS) as answer:
        await answer.read()
        return answer


async def test_verbose_json_with_words_and_segments(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    data = form(make_wav(6.0), response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})
    async with session.post(url, data=data, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200
        body = await answer.json()
    assert body["task"] == "transcribe" and body["duration"] == pytest.approx(6.0)
    assert body["text"] == " ".join(w["word"] for w in body["words"])
    ends = [s["end"] for s in body["segments"]]
    assert ends == sorted(ends) and ends[-1] <= 6.0
    assert body["segments"][0]["id"] == 0 and "tokens" in body["segments"][0]
    assert "usage" not in body  # OpenAI-only


async def test_json_is_default_and_deterministic(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    bodies, audio = [], make_wav(2.0)
    for _ in range(2):
        async with session.post(url, data=form(audio), headers=AZURE_KEY_HEADERS) as answer:
            bodies.append(await answer.json())
    assert bodies[0] == bodies[1] and set(bodies[0]) == {"text"} and bodies[0]["text"]
    assert server.stats()["upload_bytes"] == 2 * len(audio)


@pytest.mark.parametrize(("fmt", "start"), [("text", ""), ("srt", "1\n00:00:00,100 --> "), ("vtt", "WEBVTT\n\n")])
async def test_text_formats_are_plain_text(emulator, session, fmt: str, start: str) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    async with session.post(url, data=form(make_wav(1.0), response_format=fmt), headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200 and answer.content_type == "text/plain"
        assert (await answer.text()).startswith(start)


async def test_translation(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/translations")
    async with session.post(
        url, data=form(make_wav(1.0), response_format="verbose_json"), headers=AZURE_KEY_HEADERS
    ) as answer:
        body = await answer.json()
    assert body["task"] == "translate" and body["language"] == "english"


async def test_refusals(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    assert (await send(session, url, form(b""))).status == 400
    assert (await send(session, url, form(make_wav(1.0), filename="clip.txt"))).status == 400
    assert (await send(session, url, form(make_wav(1.0), response_format="xml"))).status == 400
    no_file = aiohttp.FormData()
    no_file.add_field("response_format", "json")
    assert (await send(session, url, no_file)).status == 400


async def test_files_over_25_mb_get_413(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    big = b"\x00" * (25 * 1024 * 1024 + 1)
    async with session.post(url, data=form(big, filename="big.mp3"), headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 413
        body = await answer.json()
    assert "Maximum content size limit (26214400) exceeded" in body["error"]["message"]
    assert server.stats()["upload_bytes"] == len(big)  # drained and counted, not kept


async def test_prompt_field_carries_fault_markers(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "whisper", "audio/transcriptions")
    statuses = [(await send(session, url, form(make_wav(0.5), prompt=fault_marker("503")))).status for _ in range(2)]
    assert statuses == [503, 200]
