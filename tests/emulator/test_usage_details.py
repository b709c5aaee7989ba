"""Usage details over HTTP: cached prompt tokens (prefixes seen before) and reasoning tokens (reasoning models)."""

from __future__ import annotations

from typing import Any

import aiohttp

from pipeline.emulator.caching import PromptCache
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url

LONG_SYSTEM = "Follow the house style guide closely. " * 200  # about 1,900 tokens: past the 1024 needed


def chat(user: str, system: str = LONG_SYSTEM, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}], **extra}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        return answer.status, await answer.json()


async def usage_of(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await post(session, url, body)
    assert status == 200, answer
    return answer["usage"]


async def test_a_long_prefix_seen_before_is_reported_cached(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt-4o", "chat/completions")
    first = await usage_of(session, url, chat("First row"))
    assert first["prompt_tokens"] >= 1024 and first["prompt_tokens_details"]["cached_tokens"] == 0
    second = await usage_of(session, url, chat("Second row, another question"))
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0 and cached < second["prompt_tokens"]
    other = await usage_of(session, azure_url(server.url, "gpt-4o-mini", "chat/completions"), chat("Third"))
    assert other["prompt_tokens_details"]["cached_tokens"] == 0  # caches are per deployment
    short = chat("Short", system="Be brief.")
    assert [(await usage_of(session, url, short))["prompt_tokens_details"]["cached_tokens"] for _ in range(2)] == [0, 0]
    server.reset()
    assert (await usage_of(session, url, chat("After reset")))["prompt_tokens_details"]["cached_tokens"] == 0


def test_prompt_cache_steps_and_bound() -> None:
    cache = PromptCache()
    text = "x" * 8000  # 2000 tokens at 4 characters each
    assert cache.observe("d", text, 2000) == 0
    assert cache.observe("d", text, 2000) == 1024 + 7 * 128  # the longest boundary below 2000 tokens
    assert cache.observe("d", text[:5000] + "y" * 3000, 2000) == 1152  # the prefix shared: 1250 tokens
    assert cache.observe("e", text, 2000) == 0  # another deployment
    assert cache.observe("d", text, 1000) == 0  # under 1024 prompt tokens nothing is cached
    small = PromptCache(capacity=8)  # room for one prompt's 8 prefixes: the oldest prompt is forgotten
    small.observe("d", text, 2000)
    small.observe("d", "z" * 8000, 2000)
    assert small.observe("d", text, 2000) == 0


async def test_reasoning_models_report_reasoning_tokens_scaled_by_effort(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "o3-mini", "chat/completions")
    counts = {}
    for effort in ("low", "medium", "high"):
        usage = await usage_of(session, url, chat("Think", system="Be brief.", reasoning_effort=effort))
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        assert reasoning > 0 and reasoning % 64 == 0 and usage["completion_tokens"] > reasoning
        counts[effort] = reasoning
    assert counts["low"] < counts["medium"] < counts["high"]
    default = await usage_of(session, url, chat("Think", system="Be brief."))
    assert default["completion_tokens_details"]["reasoning_tokens"] == counts["medium"]
    plain = await usage_of(session, azure_url(server.url, "gpt-4o", "chat/completions"), chat("Think"))
    assert plain["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_reasoning_can_spend_the_whole_budget(emulator, session) -> None:
    server = await emulator()
    status, answer = await post(session, azure_url(server.url, "gpt-5-mini", "chat/completions"),
                                chat("Think", system="Be brief.", max_completion_tokens=40))
    assert status == 200
    assert answer["choices"][0]["message"]["content"] == "" and answer["choices"][0]["finish_reason"] == "length"
    usage = answer["usage"]
    assert usage["completion_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"] == 40


async def test_reasoning_effort_is_checked(emulator, session) -> None:
    server = await emulator()
    status, answer = await post(session, azure_url(server.url, "gpt-4o", "chat/completions"),
                                chat("x", reasoning_effort="low"))
    assert status == 400 and answer["error"]["code"] == "unsupported_parameter"
    status, answer = await post(session, azure_url(server.url, "o4-mini", "chat/completions"),
                                chat("x", reasoning_effort="extreme"))
    assert status == 400 and answer["error"]["param"] == "reasoning_effort"
