"""429s under a tight quota, with Azure's headers and bodies."""

from __future__ import annotations

import asyncio
import time

from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url

EMBED = {"input": "hello"}


async def test_second_request_in_the_window_gets_429(emulator, session) -> None:
    server = await emulator(rpm=60, window_s=1.0)  # one request per second
    url = azure_url(server.url, "text-embedding-3-small", "embeddings")
    async with session.post(url, json=EMBED, headers=AZURE_KEY_HEADERS) as first:
        assert first.status == 200
        assert first.headers["x-ratelimit-limit-requests"] == "1"
        assert first.headers["x-ratelimit-remaining-requests"] == "0"
    async with session.post(url, json=EMBED, headers=AZURE_KEY_HEADERS) as second:
        assert second.status == 429
        assert second.headers["retry-after"] == "1"
        assert 0 < int(second.headers["retry-after-ms"]) <= 1000
        body = await second.json()
    error = body["error"]
    assert error["code"] == "429"
    assert error["message"].startswith(
        "Requests to the Embeddings_Create Operation under Azure OpenAI API version 2024-10-21 "
        "have exceeded call rate limit"
    )
    assert "Please retry after 1 second." in error["message"]
    await asyncio.sleep(int(second.headers["retry-after-ms"]) / 1000 + 0.02)
    async with session.post(url, json=EMBED, headers=AZURE_KEY_HEADERS) as third:
        assert third.status == 200


async def test_token_rate_limit_message_names_tokens(emulator, session) -> None:
    server = await emulator(tpm=600, window_s=1.0)  # 10 tokens per second
    url = azure_url(server.url, "gpt-4o", "chat/completions")
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as first:
        assert first.status == 200
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as second:
        assert second.status == 429
        message = (await second.json())["error"]["message"]
    assert "ChatCompletions_Create" in message and "token rate limit" in message


async def test_deployments_have_separate_quotas(emulator, session) -> None:
    server = await emulator(rpm=60)
    for deployment in ("a", "b"):
        async with session.post(
            azure_url(server.url, deployment, "embeddings"), json=EMBED, headers=AZURE_KEY_HEADERS
        ) as answer:
            assert answer.status == 200


async def test_openai_route_429_shape(emulator, session) -> None:
    server = await emulator(rpm=60)
    url = f"{server.url}/v1/embeddings"
    body = dict(EMBED, model="text-embedding-3-small")
    headers = {"Authorization": "Bearer k"}
    async with session.post(url, json=body, headers=headers):
        pass
    async with session.post(url, json=body, headers=headers) as answer:
        error = (await answer.json())["error"]
    assert answer.status == 429
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")


async def test_admitted_arrivals_respect_the_quota(emulator, session) -> None:
    """A burst of 30 requests over ~1 s against 600 RPM (10 per 1 s window)."""
    server = await emulator(rpm=600, window_s=1.0)
    url = azure_url(server.url, "e", "embeddings")

    async def one() -> int:
        async with session.post(url, json=EMBED, headers=AZURE_KEY_HEADERS) as answer:
            return answer.status

    statuses = []
    started = time.monotonic()
    while time.monotonic() - started < 1.2:
        statuses += await asyncio.gather(*(one() for _ in range(5)))
        await asyncio.sleep(0.1)
    assert 10 <= statuses.count(200) <= 20
    stats = server.stats()
    assert stats["throttled"] == statuses.count(429)
    times = stats["admitted_times"]
    for start in times:
        assert sum(1 for t in times if start <= t < start + 0.999) <= 10
