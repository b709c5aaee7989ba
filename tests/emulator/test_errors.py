"""Refusals: auth, routing, validation and content filter, with the services' bodies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url

USER = {"messages": [{"role": "user", "content": "hi"}]}


async def call(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS if headers is None else headers) as answer:
        return answer.status, await answer.json()


async def test_no_auth_header_is_401_like_azure(emulator, session) -> None:
    server = await emulator()
    status, body = await call(session, azure_url(server.url, "gpt", "chat/completions"), USER, headers={})
    assert status == 401
    assert body["error"]["code"] == "401" and "missing subscription key" in body["error"]["message"]


async def test_wrong_key_is_401(emulator, session) -> None:
    server = await emulator(api_key="right")
    url = azure_url(server.url, "gpt", "chat/completions")
    status, body = await call(session, url, USER, headers={"api-key": "wrong"})
    assert status == 401 and "invalid subscription key" in body["error"]["message"]
    status, _ = await call(session, url, USER, headers={"api-key": "right"})
    assert status == 200
    status, _ = await call(session, url, USER, headers={"Authorization": "Bearer right"})
    assert status == 200


async def test_token_verifier_checks_bearer_tokens(emulator, session) -> None:
    server = await emulator(token_verifier=lambda token: token == "entra-token")
    url = azure_url(server.url, "gpt", "chat/completions")
    status, _ = await call(session, url, USER, headers={"Authorization": "Bearer entra-token"})
    assert status == 200
    status, body = await call(session, url, USER, headers={"Authorization": "Bearer forged"})
    assert status == 401 and "Access token" in body["error"]["message"]


async def test_openai_route_401_has_openai_shape(emulator, session) -> None:
    server = await emulator(api_key="right")
    status, body = await call(session, f"{server.url}/v1/embeddings", {"model": "e", "input": "x"}, headers={})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"


async def test_unknown_deployment(emulator, session) -> None:
    server = await emulator(deployments={"gpt-4o"})
    status, body = await call(session, azure_url(server.url, "gpt-5", "chat/completions"), USER)
    assert status == 404 and body["error"]["code"] == "DeploymentNotFound"
    status, body = await call(session, f"{server.url}/v1/chat/completions", dict(USER, model="gpt-5"))
    assert status == 404 and body["error"]["code"] == "model_not_found"


async def test_missing_api_version_is_resource_not_found(emulator, session) -> None:
    server = await emulator()
    status, body = await call(session, azure_url(server.url, "gpt", "chat/completions", api_version=None), USER)
    assert (status, body) == (404, {"error": {"code": "404", "message": "Resource not found"}})


async def test_unknown_operation_and_path(emulator, session) -> None:
    server = await emulator()
    status, body = await call(session, azure_url(server.url, "gpt", "chat/nothing"), USER)
    assert status == 404 and body["error"]["message"] == "Resource not found"
    async with session.get(f"{server.url}/elsewhere") as answer:
        assert answer.status == 404


async def test_missing_model_on_v1_routes(emulator, session) -> None:
    server = await emulator()
    status, body = await call(session, f"{server.url}/openai/v1/chat/completions", USER)
    assert status == 400 and "model" in body["error"]["message"]


async def test_body_that_is_not_json(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "gpt", "chat/completions")
    async with session.post(url, data=b"{not json", headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("op", "body", "fragment"),
    [
        ("embeddings", {}, "Missing required parameter: 'input'"),
        ("embeddings", {"input": ""}, "'$.input' is invalid"),
        ("embeddings", {"input": []}, "'$.input' is invalid"),
        ("embeddings", {"input": ["x"] * 2049}, "Too many inputs. The max number of inputs is 2048"),
        ("embeddings", {"input": "word " * 9000}, "maximum context length is 8192 tokens"),
        ("embeddings", {"input": "x", "encoding_format": "int8"}, "Supported values are: 'float', and 'base64'"),
        ("chat/completions", {}, "Missing required parameter: 'messages'"),
        ("chat/completions", {"messages": []}, "empty array"),
        ("chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'"),
        ("chat/completions", dict(USER, n=0), "integer below minimum value"),
        ("chat/completions", dict(USER, stream_options={"include_usage": True}), "only allowed when 'stream'"),
        ("chat/completions", dict(USER, response_format={"type": "json_object"}), "must contain the word 'json'"),
        ("completions", {}, "Missing required parameter: 'prompt'"),
        ("images/generations", {}, "Missing required parameter: 'prompt'"),
        ("audio/speech", {"input": "hi"}, "Missing required parameter: 'voice'"),
        ("audio/speech", {"voice": "alloy"}, "Missing required parameter: 'input'"),
        ("audio/speech", {"voice": "alloy", "input": "x" * 4097}, "string too long"),
    ],
)
async def test_validation_errors(emulator, session, op: str, body: dict, fragment: str) -> None:
    server = await emulator()
    status, answer = await call(session, azure_url(server.url, "text-embedding-3-small", op), body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert fragment in answer["error"]["message"]


async def test_dall_e_3_accepts_only_one_image(emulator, session) -> None:
    server = await emulator()
    status, body = await call(session, azure_url(server.url, "dall-e-3", "images/generations"), {"prompt": "x", "n": 2})
    assert status == 400 and body["error"]["message"] == "You must provide n=1 for this model."
    status, body = await call(
        session, azure_url(server.url, "dall-e-3", "images/generations"), {"prompt": "x", "size": "512x512"}
    )
    assert status == 400 and body["error"]["param"] == "size"


async def test_ada_refuses_dimensions(emulator, session) -> None:
    server = await emulator()
    url = azure_url(server.url, "text-embedding-ada-002", "embeddings")
    status, body = await call(session, url, {"input": "x", "dimensions": 10})
    assert status == 400 and "does not support specifying dimensions" in body["error"]["message"]


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("chat/completions", {"messages": [{"role": "user", "content": "please BLOCKME now"}]}),
        ("chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "BLOCKME"}]}]}),
        ("completions", {"prompt": "BLOCKME"}),
        ("embeddings", {"input": ["fine", "BLOCKME"]}),
    ],
)
async def test_prompt_content_filter_uses_innererror(emulator, session, op: str, body: dict) -> None:
    server = await emulator()
    status, answer = await call(session, azure_url(server.url, "gpt", op), body)
    assert status == 400
    error = answer["error"]
    assert (error["code"], error["param"], error["status"]) == ("content_filter", "prompt", 400)
    inner = error["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["violence"] == {"filtered": True, "severity": "high"}
    assert inner["content_filter_result"]["jailbreak"] == {"filtered": False, "detected": False}


async def test_image_content_filter_uses_inner_error(emulator, session) -> None:
    server = await emulator(content_filter_word="FORBIDDEN")
    url = azure_url(server.url, "dall-e-3", "images/generations")
    status, answer = await call(session, url, {"prompt": "a FORBIDDEN picture"})
    assert status == 400
    error = answer["error"]
    assert error["code"] == "content_policy_violation" and error["type"] == "invalid_request_error"
    assert error["inner_error"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["inner_error"]["content_filter_results"]["violence"]["filtered"] is True
