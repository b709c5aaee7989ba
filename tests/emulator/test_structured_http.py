"""Chat structured outputs over HTTP: json_schema and json_object answers, their faults, streamed alike."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import jsonschema
import pytest

from pipeline.emulator.ops.answers import REFUSAL
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url, fault_marker

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "mood": {"type": "string", "enum": ["calm", "angry"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "ratio": {"type": "number"},
        "note": {"type": ["string", "null"]},
        "parts": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
                                             "required": ["n"], "additionalProperties": False}},
    },
    "required": ["title", "mood", "count", "ratio", "note", "parts"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "review", "strict": True, "schema": SCHEMA}}


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "response_format": FORMAT, **extra}


async def message_of(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200, await answer.text()
        choice = (await answer.json())["choices"][0]
    return {"finish_reason": choice["finish_reason"], **choice["message"]}


@pytest.fixture
async def url(emulator) -> str:
    server = await emulator()
    return azure_url(server.url, "gpt-4o", "chat/completions")


async def test_json_schema_answer_conforms_and_is_deterministic(url, session) -> None:
    first = await message_of(session, url, chat("Review this"))
    jsonschema.validate(json.loads(first["content"]), SCHEMA)
    assert first["refusal"] is None and first["finish_reason"] == "stop"
    assert (await message_of(session, url, chat("Review this")))["content"] == first["content"]
    assert (await message_of(session, url, chat("Review that")))["content"] != first["content"]


async def test_badjson_fault_gives_content_that_is_not_json(url, session) -> None:
    message = await message_of(session, url, chat(f"Review {fault_marker('badjson')}"))
    assert message["finish_reason"] == "stop"
    with pytest.raises(ValueError):
        json.loads(message["content"])
    again = await message_of(session, url, chat(f"Review {fault_marker('badjson')}"))
    jsonschema.validate(json.loads(again["content"]), SCHEMA)  # the marker's one time is spent


async def test_schema_fault_gives_json_the_schema_refuses(url, session) -> None:
    message = await message_of(session, url, chat(f"Review {fault_marker('schema', 'always')}"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(message["content"]), SCHEMA)


async def test_refusal_fault(url, session) -> None:
    message = await message_of(session, url, chat(f"Review {fault_marker('refusal')}"))
    assert message["content"] is None and message["refusal"] == REFUSAL and message["finish_reason"] == "stop"


async def test_json_object_mode(url, session) -> None:
    body = {"messages": [{"role": "user", "content": "answer in json"}], "response_format": {"type": "json_object"}}
    assert isinstance(json.loads((await message_of(session, url, body))["content"]), dict)


async def read_stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[str, str, str]:
    """(content, refusal, finish_reason) put together from the chunks."""
    content, refusal, finish = "", "", ""
    async with session.post(url, json=dict(body, stream=True), headers=AZURE_KEY_HEADERS) as answer:
        for block in (await answer.text()).split("\n\n"):
            if not block.startswith("data: {"):
                continue
            for choice in json.loads(block[6:])["choices"]:
                content += choice["delta"].get("content") or ""
                refusal += choice["delta"].get("refusal") or ""
                finish = choice["finish_reason"] or finish
    return content, refusal, finish


async def test_streamed_json_equals_the_plain_answer(url, session) -> None:
    plain = await message_of(session, url, chat("Stream a review"))
    content, refusal, finish = await read_stream(session, url, chat("Stream a review"))
    assert (content, refusal, finish) == (plain["content"], "", "stop")


async def test_streamed_refusal(url, session) -> None:
    content, refusal, finish = await read_stream(session, url, chat(f"x {fault_marker('refusal')}"))
    assert (content, refusal, finish) == ("", REFUSAL, "stop")


async def test_schema_name_is_required(url, session) -> None:
    body = chat("x", response_format={"type": "json_schema", "json_schema": {"schema": SCHEMA}})
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"]["param"] == "response_format.json_schema.name"
