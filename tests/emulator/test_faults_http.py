"""Every fault marker kind over real HTTP, and the random faults."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time

import aiohttp
import numpy as np
import pytest

from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url, fault_marker

STATUS_KINDS = ["500", "502", "503", "504", "408", "409", "400", "404", "413", "422", "401", "403"]


def chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def status_of(session: aiohttp.ClientSession, url: str, body: dict) -> int:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        await answer.read()
        return answer.status


@pytest.mark.parametrize("kind", STATUS_KINDS)
async def test_status_marker_fails_n_times_then_succeeds(emulator, session, kind: str) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", "chat/completions")
    body = chat(f"row 1 {fault_marker(kind, 2)}")
    assert [await status_of(session, url, body) for _ in range(3)] == [int(kind), int(kind), 200]


async def test_error_bodies_are_json_with_an_error_object(emulator, session) -> None:
    server = await emulator()
    async with session.post(
        azure_url(server.url, "gpt", "chat/completions"), json=chat(fault_marker("503")), headers=AZURE_KEY_HEADERS
    ) as answer:
        body = await answer.json()
    assert answer.status == 503 and body["error"]["code"] == "ServiceUnavailable"


async def test_429_marker_with_and_without_retry_after(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-3-small", "embeddings")
    async with session.post(url, json={"input": fault_marker("429")}, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 429
        assert (answer.headers["retry-after"], answer.headers["retry-after-ms"]) == ("1", "50")
        assert "Embeddings_Create" in (await answer.json())["error"]["message"]
    async with session.post(url, json={"input": fault_marker("429bare")}, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 429
        assert "retry-after" not in answer.headers and "retry-after-ms" not in answer.headers


async def test_marker_in_any_embedding_item_fails_the_batch(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "e", "embeddings")
    body = {"input": ["fine", f"bad {fault_marker('500', 1)}", "fine too"]}
    assert [await status_of(session, url, body) for _ in range(2)] == [500, 200]


async def test_always_marker_is_permanent(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", "completions")
    body = {"prompt": fault_marker("400", "always")}
    assert {await status_of(session, url, body) for _ in range(4)} == {400}


async def test_drop_closes_without_an_answer(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", "chat/completions")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await status_of(session, url, chat(fault_marker("drop")))
    assert await status_of(session, url, chat(fault_marker("drop"))) == 200
    assert server.stats()["by_status"]["dropped"] == 1


async def test_hang_delays_the_answer(emulator, session) -> None:
    server = await emulator(hang_s=0.3)
    url = azure_url(server.url, "gpt", "chat/completions")
    started = time.monotonic()
    assert await status_of(session, url, chat(fault_marker("hang"))) == 200
    assert time.monotonic() - started >= 0.3


async def test_client_timeout_on_a_hang_frees_the_server(emulator, session) -> None:
    server = await emulator(hang_s=30)
    url = azure_url(server.url, "gpt", "chat/completions")
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            url, json=chat(fault_marker("hang")), headers=AZURE_KEY_HEADERS, timeout=aiohttp.ClientTimeout(total=0.2)
        ):
            pass
    for _ in range(50):  # the handler is cancelled when the client goes away
        if server.stats()["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert server.stats()["by_status"].get("cancelled") == 1


async def test_truncate_cuts_the_body(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "e", "embeddings")
    async with session.post(url, json={"input": fault_marker("truncate")}, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200
        declared = int(answer.headers["Content-Length"])
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()
    assert declared > 0


async def test_truncate_on_a_stream_ends_without_done(emulator, session) -> None:
    server = await emulator()
    body = dict(chat(fault_marker("truncate")), stream=True)
    url = azure_url(server.url, "gpt", "chat/completions")
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
            async for piece in answer.content.iter_any():
                received += piece
    assert b"data: {" in received and b"[DONE]" not in received


async def test_invalidjson_is_a_200_that_does_not_parse(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "e", "embeddings")
    async with session.post(url, json={"input": fault_marker("invalidjson")}, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200
        text = await answer.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("completions", {"prompt": fault_marker("502")}),
        ("images/generations", {"prompt": fault_marker("502")}),
        ("audio/speech", {"input": fault_marker("502"), "voice": "alloy"}),
    ],
)
async def test_markers_are_read_from_every_text_field(emulator, session, op: str, body: dict) -> None:
    server = await emulator(image_size_px=8)
    url = azure_url(server.url, "model", op)
    assert [await status_of(session, url, body) for _ in range(2)] == [502, 200]


async def test_random_errors_follow_rate_and_seed(emulator, session) -> None:
    async def run() -> list[int]:
        server = await emulator(error_rate=0.3, burst429_rate=0.2, seed=11)
        url = azure_url(server.url, "e", "embeddings")
        return [await status_of(session, url, {"input": f"row {i}"}) for i in range(40)]

    first, second = await run(), await run()
    assert first == second
    assert set(first) == {200, 429, 500, 503}


async def test_random_drops_and_truncations(emulator, session) -> None:
    server = await emulator(drop_rate=0.5, truncate_rate=0.5)
    url = azure_url(server.url, "e", "embeddings")
    for _ in range(6):
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            await status_of(session, url, {"input": "x"})
    assert sum(server.stats()["faults"].values()) == 6


# ---- answer faults: a 200 whose body is wrong the ways real servers and gateways get it wrong


async def answer_of(session: aiohttp.ClientSession, url: str, body: dict) -> dict:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200
        return json.loads(await answer.read())  # Python's json reads the bare NaN and Infinity they hold


async def test_badindex_and_fewervectors_then_a_faithful_answer(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-3-small", "embeddings")
    # One fault per request: the first marker still due; every marker counts the request.
    body = {"input": ["a", "b", f"c {fault_marker('badindex', 1)}", f"d {fault_marker('fewervectors', 2)}"]}
    first, second, third = [await answer_of(session, url, body) for _ in range(3)]
    assert [e["index"] for e in first["data"]] == [0, 1, 2, 0]
    assert len(second["data"]) == 1
    assert [e["index"] for e in third["data"]] == [0, 1, 2, 3]
    alone = await answer_of(session, url, {"input": fault_marker("fewervectors", 1)})
    assert alone["data"] == []
    assert server.stats()["faults"] == {"badindex": 1, "fewervectors": 2}


@pytest.mark.parametrize(("dimensions", "sent"), [(256, 1536), (None, 768)])
async def test_wrongdim_ignores_dimensions(emulator, session, dimensions: int | None, sent: int) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-3-small", "embeddings")
    body = {"input": ["x", fault_marker("wrongdim", 1)], **({"dimensions": dimensions} if dimensions else {})}
    spoiled, faithful = [await answer_of(session, url, body) for _ in range(2)]
    assert {len(e["embedding"]) for e in spoiled["data"]} == {sent}
    assert {len(e["embedding"]) for e in faithful["data"]} == {dimensions or 1536}


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_nanvector_and_nanusage(emulator, session, encoding: str) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-3-small", "embeddings")
    answer = await answer_of(session, url, {"input": ["x", fault_marker("nanvector", 1)], "encoding_format": encoding})
    vector = answer["data"][0]["embedding"]
    if encoding == "base64":
        vector = np.frombuffer(base64.b64decode(vector), dtype="<f4").tolist()
    assert math.isnan(vector[0]) and vector[-1] == math.inf
    assert all(math.isfinite(v) for v in answer["data"][1]["embedding"] if encoding == "float")
    usage = (await answer_of(session, url, {"input": fault_marker("nanusage", 1)}))["usage"]
    assert math.isnan(usage["prompt_tokens"]) and usage["total_tokens"] > 0


async def test_contentparts_and_nanusage_in_chat(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", "chat/completions")
    body = chat(f"say something {fault_marker('contentparts', 1)}")
    parts, plain = [await answer_of(session, url, body) for _ in range(2)]
    content = parts["choices"][0]["message"]["content"]
    assert [p["type"] for p in content] == ["text", "text"]
    assert "".join(p["text"] for p in content) == plain["choices"][0]["message"]["content"]
    usage = (await answer_of(session, url, chat(fault_marker("nanusage", 1))))["usage"]
    assert math.isnan(usage["prompt_tokens"])


async def stream_events(session: aiohttp.ClientSession, url: str, body: dict) -> list[dict]:
    async with session.post(url, json={**body, "stream": True}, headers=AZURE_KEY_HEADERS) as answer:
        text = (await answer.read()).decode()
    data = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


@pytest.mark.parametrize(("op", "body"), [("chat/completions", chat("hi {}")), ("completions", {"prompt": "hi {}"})])
async def test_nofinish_streams_end_with_done_but_no_finish_reason(emulator, session, op: str, body: dict) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", op)
    spoiled = json.loads(json.dumps(body).replace("{}", fault_marker("nofinish", 1)))
    reasons = [[c.get("finish_reason") for e in await stream_events(session, url, b) for c in e["choices"]]
               for b in (spoiled, spoiled)]
    assert not any(reasons[0])
    assert any(reasons[1])
