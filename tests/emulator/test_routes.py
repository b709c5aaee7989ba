"""Every route's answer shape and headers, over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import uuid

import aiohttp
import numpy as np
import pytest
from multidict import CIMultiDict

from pipeline.emulator import embedding_vector
from pipeline.emulator.content import png_size
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url
from pipeline.tokens import estimate_messages_tokens, estimate_text_tokens

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}


async def post(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, CIMultiDict[str], dict]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        return answer.status, CIMultiDict(answer.headers), await answer.json()


async def test_embeddings_float_shape_usage_and_headers(emulator, session) -> None:
    server = await emulator()
    status, headers, body = await post(
        session, azure_url(server.url, "text-embedding-3-small", "embeddings"), {"input": ["a b", "c"]}
    )
    assert status == 200
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["data"][0]["object"] == "embedding"
    assert np.array_equal(np.array(body["data"][0]["embedding"], dtype=np.float32), embedding_vector("a b", 1536))
    tokens = estimate_text_tokens("a b") + estimate_text_tokens("c")
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    uuid.UUID(headers["x-request-id"])
    uuid.UUID(headers["apim-request-id"])
    assert headers["x-ms-region"]
    for name in ("limit-requests", "limit-tokens", "remaining-requests", "remaining-tokens"):
        assert int(headers[f"x-ratelimit-{name}"]) >= 0


async def test_embeddings_base64_and_dimensions(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-3-large", "embeddings")
    status, _, body = await post(session, url, {"input": "x", "encoding_format": "base64", "dimensions": 256})
    assert status == 200
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(vector, embedding_vector("x", 256))


async def test_embeddings_token_array_input(emulator, session) -> None:
    server = await emulator()
    status, _, body = await post(session, azure_url(server.url, "emb", "embeddings"), {"input": [[1, 2, 3], [4]]})
    assert status == 200 and len(body["data"]) == 2
    assert body["usage"]["prompt_tokens"] == 4


async def test_chat_shape_with_azure_annotations(emulator, session) -> None:
    server = await emulator()
    status, _, body = await post(session, azure_url(server.url, "gpt-4o", "chat/completions"), dict(CHAT, n=2))
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["system_fingerprint"].startswith("fp_")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    prompt_filter = body["prompt_filter_results"][0]
    assert prompt_filter["prompt_index"] == 0
    assert prompt_filter["content_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    usage = body["usage"]
    assert usage["prompt_tokens"] == estimate_messages_tokens(CHAT["messages"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_chat_is_deterministic_and_respects_max_tokens(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt-4o", "chat/completions")
    _, _, first = await post(session, url, CHAT)
    _, _, again = await post(session, url, CHAT)
    assert first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    _, _, cut = await post(session, url, dict(CHAT, max_completion_tokens=3))
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] <= 3


async def test_chat_json_schema_answer(emulator, session) -> None:
    server = await emulator()
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}}
    body = dict(
        CHAT,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}},
    )
    _, _, answer = await post(session, azure_url(server.url, "gpt-4o", "chat/completions"), body)
    value = json.loads(answer["choices"][0]["message"]["content"])
    assert isinstance(value["city"], str) and isinstance(value["n"], int)


async def test_chat_forced_tool_call(emulator, session) -> None:
    server = await emulator()
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    body = dict(CHAT, tools=[tool], tool_choice="required")
    _, _, answer = await post(session, azure_url(server.url, "gpt-4o", "chat/completions"), body)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"


async def test_output_filter_cuts_the_answer(emulator, session) -> None:
    server = await emulator()
    body = {"messages": [{"role": "user", "content": "say FILTEROUT"}]}
    status, _, answer = await post(session, azure_url(server.url, "gpt-4o", "chat/completions"), body)
    assert status == 200
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["choices"][0]["content_filter_results"]["violence"]["filtered"] is True


async def test_legacy_completions_shape(emulator, session) -> None:
    server = await emulator()
    body = {"prompt": ["one", "two"], "max_tokens": 5}
    status, _, answer = await post(session, azure_url(server.url, "instruct", "completions"), body)
    assert status == 200
    assert answer["object"] == "text_completion"
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert all(c["finish_reason"] in ("stop", "length") for c in answer["choices"])
    assert len(answer["prompt_filter_results"]) == 2
    assert answer["usage"]["completion_tokens"] <= 10


async def test_images_b64_and_url(emulator, session) -> None:
    server = await emulator(image_size_px=16)
    url = azure_url(server.url, "dall-e-3", "images/generations")
    _, _, answer = await post(session, url, {"prompt": "a cat", "response_format": "b64_json"})
    item = answer["data"][0]
    assert png_size(base64.b64decode(item["b64_json"])) == (16, 16)
    assert item["revised_prompt"]
    assert item["prompt_filter_results"]["profanity"] == {"filtered": False, "detected": False}
    assert item["content_filter_results"]["violence"]["severity"] == "safe"
    _, _, answer = await post(session, url, {"prompt": "a cat"})
    image_url = answer["data"][0]["url"]
    assert image_url.startswith(server.url + "/_emulator/images/")
    async with session.get(image_url) as image:
        assert image.status == 200 and image.content_type == "image/png"
        assert png_size(await image.read()) == (16, 16)


async def test_images_requested_size(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "dall-e-3", "images/generations")
    _, _, answer = await post(session, url, {"prompt": "x", "size": "1792x1024", "response_format": "b64_json"})
    assert png_size(base64.b64decode(answer["data"][0]["b64_json"])) == (1792, 1024)


async def test_dall_e_2_returns_n_images(emulator, session) -> None:
    server = await emulator(image_size_px=8)
    url = azure_url(server.url, "dall-e-2", "images/generations")
    status, _, answer = await post(session, url, {"prompt": "x", "n": 3, "size": "256x256"})
    assert status == 200 and len(answer["data"]) == 3


@pytest.mark.parametrize(("fmt", "content_type"), [("mp3", "audio/mpeg"), ("wav", "audio/wav"), ("pcm", "audio/pcm")])
async def test_speech_content_types(emulator, session, fmt: str, content_type: str) -> None:
    server = await emulator()
    body = {"input": "Hello world", "voice": "alloy", "response_format": fmt}
    async with session.post(
        azure_url(server.url, "tts", "audio/speech"), json=body, headers=AZURE_KEY_HEADERS
    ) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == content_type
        assert len(await answer.read()) > 1000


async def test_azure_v1_route_takes_the_deployment_from_the_body(emulator, session) -> None:
    server = await emulator(deployments={"gpt-4o"})
    status, _, body = await post(session, f"{server.url}/openai/v1/chat/completions", dict(CHAT, model="gpt-4o"))
    assert status == 200 and body["model"] == "gpt-4o"
    assert "prompt_filter_results" in body  # still Azure


async def test_openai_route_has_openai_shape_and_headers(emulator, session) -> None:
    server = await emulator()
    async with session.post(
        f"{server.url}/v1/chat/completions", json=dict(CHAT, model="gpt-4o"), headers={"Authorization": "Bearer k"}
    ) as answer:
        body = await answer.json()
        assert answer.status == 200
        assert answer.headers["x-request-id"].startswith("req_")
        assert answer.headers["openai-version"] == "2020-10-01"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "prompt_filter_results" not in body
    assert "content_filter_results" not in body["choices"][0]


async def test_latency_is_added_to_every_answer(emulator, session) -> None:
    server = await emulator(latency_ms=150)
    started = time.monotonic()
    status, _, _ = await post(session, azure_url(server.url, "e", "embeddings"), {"input": "x"})
    assert status == 200 and time.monotonic() - started >= 0.15
