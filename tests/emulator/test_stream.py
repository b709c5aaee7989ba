"""Server-sent events exactly as the service streams them."""

from __future__ import annotations

import json
import time

import aiohttp

from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url

CHAT = {"messages": [{"role": "user", "content": "Tell me something"}], "stream": True}


async def read_events(session: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> tuple[str, list[str]]:
    async with session.post(url, json=body, headers=headers) as answer:
        assert answer.status == 200
        text = await answer.text()
        return answer.headers["Content-Type"], text.split("\n\n")


async def test_azure_chat_stream(emulator, session) -> None:
    server = await emulator()
    body = dict(CHAT, stream_options={"include_usage": True})
    content_type, blocks = await read_events(
        session, azure_url(server.url, "gpt-4o", "chat/completions"), body, AZURE_KEY_HEADERS
    )
    assert content_type.startswith("text/event-stream")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(block.startswith("data: ") for block in blocks[:-1])
    events = [json.loads(block[6:]) for block in blocks[:-2]]
    first, role, *deltas, finish, usage = events
    assert first["choices"] == [] and first["prompt_filter_results"][0]["prompt_index"] == 0
    assert role["object"] == "chat.completion.chunk"
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert role["usage"] is None
    text = "".join(e["choices"][0]["delta"]["content"] for e in deltas)
    assert text and all(e["choices"][0]["finish_reason"] is None for e in deltas)
    assert all(e["choices"][0]["content_filter_results"]["hate"]["filtered"] is False for e in deltas)
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert len({e["id"] for e in events[1:]}) == 1


async def test_streamed_text_equals_the_plain_answer(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt-4o", "chat/completions")
    _, blocks = await read_events(session, url, CHAT, AZURE_KEY_HEADERS)
    events = [json.loads(block[6:]) for block in blocks[:-2]]
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    async with session.post(url, json=dict(CHAT, stream=False), headers=AZURE_KEY_HEADERS) as answer:
        plain = (await answer.json())["choices"][0]["message"]["content"]
    assert streamed == plain


async def test_openai_stream_has_no_azure_chunks(emulator, session) -> None:
    server = await emulator()
    _, blocks = await read_events(
        session, f"{server.url}/v1/chat/completions", dict(CHAT, model="gpt-4o"), {"Authorization": "Bearer k"}
    )
    events = [json.loads(block[6:]) for block in blocks[:-2]]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("prompt_filter_results" not in e and "content_filter_results" not in e["choices"][0] for e in events)
    assert all("usage" not in e for e in events)  # no include_usage: no usage key at all


async def test_stream_is_paced_per_token(emulator, session) -> None:
    server = await emulator(latency_per_token_ms=10)
    body = dict(CHAT, max_tokens=10)
    started = time.monotonic()
    _, blocks = await read_events(session, azure_url(server.url, "gpt", "chat/completions"), body, AZURE_KEY_HEADERS)
    deltas = len(blocks) - 5  # minus prompt-filter, role, finish chunks, [DONE] and the trailing ""
    assert time.monotonic() - started >= deltas * 0.01 * 0.9


async def test_completions_stream(emulator, session) -> None:
    server = await emulator()
    body = {"prompt": "Once", "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}
    _, blocks = await read_events(session, azure_url(server.url, "instruct", "completions"), body, AZURE_KEY_HEADERS)
    events = [json.loads(block[6:]) for block in blocks[:-2]]
    assert events[0]["choices"] == [] and "prompt_filter_results" in events[0]
    assert all(e["object"] == "text_completion" for e in events[1:])
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert events[-1]["usage"]["prompt_tokens"] >= 1
