"""Flex processing (service_tier "flex"): later answers, and "resource unavailable" that is no quota signal."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url, fault_marker

UNAVAILABLE = {"message": "Resource unavailable, please try again later.", "type": "invalid_request_error",
               "param": None, "code": "resource_unavailable"}


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 20, **extra}


def responses(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "input": text, "max_output_tokens": 20, **extra}


def urls(base: str) -> dict[str, str]:
    return {"chat": azure_url(base, "gpt-4o", "chat/completions"), "responses": f"{base}/v1/responses"}


BODIES = {"chat": chat, "responses": responses}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, Any]]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        return answer.status, answer.headers, await answer.json()


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_flex_answers_later_and_says_so(emulator, session, api: str) -> None:
    server = await emulator(flex_latency_ms=150)
    url, body = urls(server.url)[api], BODIES[api]
    started = time.monotonic()
    status, _, flex = await post(session, url, body(service_tier="flex"))
    assert status == 200 and flex["service_tier"] == "flex"
    assert time.monotonic() - started >= 0.15
    _, _, plain = await post(session, url, body())
    # Azure's chat reports the tier only when one was asked for; a response always does.
    assert plain.get("service_tier") == (None if api == "chat" else "default")


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_flex_unavailable_is_a_429_without_quota_headers_or_charge(emulator, session, api: str) -> None:
    server = await emulator(flex_unavailable_rate=1.0, rpm=600, tpm=100_000)
    url, body = urls(server.url)[api], BODIES[api]
    status, headers, answer = await post(session, url, body(service_tier="flex"))
    assert status == 429 and answer == {"error": UNAVAILABLE}
    assert not any(name.lower().startswith("x-ratelimit") for name in headers) and "retry-after" not in headers
    stats = server.stats()
    assert stats["tokens_charged"] == 0 and stats["throttled"] == 0 and stats["flex_unavailable"] == 1
    status, headers, _ = await post(session, url, body())  # the default tier is not short of capacity
    assert status == 200 and "x-ratelimit-remaining-requests" in headers


async def test_flexbusy_marker_refuses_n_flex_requests_then_serves(emulator, session) -> None:
    server = await emulator()
    url = urls(server.url)["chat"]
    body = chat(f"row {fault_marker('flexbusy', 2)}", service_tier="flex")
    assert [(await post(session, url, body))[0] for _ in range(3)] == [429, 429, 200]
    assert (await post(session, url, chat(f"row {fault_marker('flexbusy', 2)} again")))[0] == 200  # not flex


async def test_flex_unavailable_rate_follows_the_seed(emulator, session) -> None:
    outcomes = []
    for _ in range(2):
        server = await emulator(flex_unavailable_rate=0.5, seed=3)
        outcomes.append([(await post(session, urls(server.url)["chat"], chat(service_tier="flex")))[0]
                         for _ in range(12)])
    assert outcomes[0] == outcomes[1] and set(outcomes[0]) == {200, 429}
