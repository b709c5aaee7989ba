"""The Responses API over HTTP: routes, answer shape, formats, budgets, faults, streams and quota charges."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import jsonschema
import pytest

from pipeline.emulator.inputs import response_messages
from pipeline.emulator.ops.answers import REFUSAL
from pipeline.emulator.testing import AZURE_KEY_HEADERS, fault_marker
from pipeline.tokens import estimate_messages_tokens

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "size": {"type": "string", "enum": ["small", "large"]},
                   "rank": {"type": "integer"}},
    "required": ["city", "size", "rank"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"format": {"type": "json_schema", "name": "place", "strict": True, "schema": SCHEMA}}
PREVIEW = "2025-04-01-preview"


def route(base: str, flavor: str = "v1") -> str:
    return {"v1": f"{base}/openai/v1/responses", "openai": f"{base}/v1/responses",
            "preview": f"{base}/openai/responses?api-version={PREVIEW}"}[flavor]


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        return answer.status, await answer.json()


async def create(session: aiohttp.ClientSession, url: str, **body: Any) -> dict[str, Any]:
    status, answer = await post(session, url, {"model": "gpt-4o", "input": "Tell me about rivers", **body})
    assert status == 200, answer
    return answer


def message_of(response: dict[str, Any]) -> dict[str, Any]:
    return next(item for item in response["output"] if item["type"] == "message")


@pytest.mark.parametrize("flavor", ["v1", "openai", "preview"])
async def test_plain_response_shape(emulator, session, flavor: str) -> None:
    server = await emulator()
    response = await create(session, route(server.url, flavor))
    assert response["id"].startswith("resp_") and response["object"] == "response"
    assert response["status"] == "completed" and response["incomplete_details"] is None and response["error"] is None
    assert response["model"] == "gpt-4o" and response["service_tier"] == "default"
    [message] = response["output"]
    assert message["id"].startswith("msg_") and message["role"] == "assistant" and message["status"] == "completed"
    [part] = message["content"]
    assert part["type"] == "output_text" and part["text"] and part["annotations"] == []
    usage = response["usage"]
    assert usage["input_tokens"] == estimate_messages_tokens([{"role": "user", "content": "Tell me about rivers"}])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0


async def test_the_answer_is_the_chat_answer_of_the_same_conversation(emulator, session) -> None:
    server = await emulator()
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Tell me about rivers"}]}]
    response = await create(session, route(server.url), input=items, instructions="Be kind.")
    messages = response_messages({"instructions": "Be kind.", "input": items})
    status, chat = await post(session, f"{server.url}/openai/v1/chat/completions",
                              {"model": "gpt-4o", "messages": messages})
    assert status == 200
    assert message_of(response)["content"][0]["text"] == chat["choices"][0]["message"]["content"]
    assert response["usage"]["input_tokens"] == chat["usage"]["prompt_tokens"]
    assert response["instructions"] == "Be kind."


async def test_classic_deployment_route_has_no_responses(emulator, session) -> None:
    server = await emulator()
    status, answer = await post(session, f"{server.url}/openai/deployments/gpt-4o/responses?api-version={PREVIEW}",
                                {"input": "x"})
    assert status == 404 and answer["error"]["code"] == "404"
    status, answer = await post(session, f"{server.url}/openai/responses?api-version=2024-10-21",
                                {"model": "gpt-4o", "input": "x"})
    assert status == 400 and "2025-03-01-preview and later" in answer["error"]["message"]


async def test_json_schema_format(emulator, session) -> None:
    server = await emulator()
    response = await create(session, route(server.url), text=JSON_SCHEMA)
    jsonschema.validate(json.loads(message_of(response)["content"][0]["text"]), SCHEMA)
    assert response["text"]["format"]["name"] == "place"
    spoiled = await create(session, route(server.url), text=JSON_SCHEMA, input=f"x {fault_marker('schema')}")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(message_of(spoiled)["content"][0]["text"]), SCHEMA)
    broken = await create(session, route(server.url), text=JSON_SCHEMA, input=f"x {fault_marker('badjson')}")
    with pytest.raises(ValueError):
        json.loads(message_of(broken)["content"][0]["text"])


async def test_max_output_tokens_cuts_the_answer(emulator, session) -> None:
    server = await emulator()
    whole = await create(session, route(server.url))
    cut = await create(session, route(server.url), max_output_tokens=16)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert message_of(cut)["status"] == "incomplete" and cut["usage"]["output_tokens"] <= 16
    assert message_of(whole)["content"][0]["text"].startswith(message_of(cut)["content"][0]["text"])


async def test_reasoning_model_puts_a_reasoning_item_first(emulator, session) -> None:
    server = await emulator()
    response = await create(session, route(server.url), model="o4-mini", reasoning={"effort": "low"})
    reasoning, message = response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_") and reasoning["summary"] == []
    assert message["type"] == "message" and response["reasoning"]["effort"] == "low"
    thought = response["usage"]["output_tokens_details"]["reasoning_tokens"]
    assert thought > 0 and response["usage"]["output_tokens"] > thought
    spent = await create(session, route(server.url), model="o4-mini", max_output_tokens=16)
    assert spent["status"] == "incomplete" and [i["type"] for i in spent["output"]] == ["reasoning"]
    status, answer = await post(session, route(server.url), {"model": "gpt-4o", "input": "x",
                                                             "reasoning": {"effort": "low"}})
    assert status == 400 and answer["error"]["param"] == "reasoning.effort"


async def test_refusal_fault(emulator, session) -> None:
    server = await emulator()
    response = await create(session, route(server.url), input=f"x {fault_marker('refusal')}")
    assert response["status"] == "completed"
    assert message_of(response)["content"] == [{"type": "refusal", "refusal": REFUSAL}]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x", "max_output_tokens": 10}, "max_output_tokens"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "schema": SCHEMA}}}, "text.format.name"),
    ({"input": "x", "text": {"format": {"type": "json_object"}}}, "input"),
    ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"input": "x", "service_tier": "cheap"}, "service_tier"),
    ({}, "input"),
])
async def test_validation_errors(emulator, session, body: dict[str, Any], param: str) -> None:
    server = await emulator()
    status, answer = await post(session, route(server.url), {"model": "gpt-4o", **body})
    assert status == 400 and answer["error"]["param"] == param


async def test_quota_is_charged_as_chat_and_status_faults_apply(emulator, session) -> None:
    server = await emulator()
    await create(session, route(server.url), max_output_tokens=100)
    prompt = estimate_messages_tokens([{"role": "user", "content": "Tell me about rivers"}])
    assert server.stats()["tokens_charged"] == prompt + 100
    status, _ = await post(session, route(server.url), {"model": "gpt-4o", "input": f"x {fault_marker('503')}"})
    assert status == 503


async def stream_events(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of a streamed response, checked for its `event:` line matching its type."""
    async with session.post(url, json=dict(body, stream=True), headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/event-stream")
        text = await answer.text()
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        events.append(json.loads(data[6:]))
        assert events[-1]["type"] == name[7:]
    return events


async def test_stream_events_in_order(emulator, session) -> None:
    server = await emulator()
    body = {"model": "o3", "input": "Tell me about rivers"}
    events = await stream_events(session, route(server.url, "openai"), body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.output_item.done"]  # the reasoning item
    assert kinds[4:6] == ["response.output_item.added", "response.content_part.added"]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 1
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    text = "".join(d["delta"] for d in deltas)
    assert text == events[-4]["text"] == message_of(final)["content"][0]["text"]
    _, plain = await post(session, route(server.url, "openai"), body)
    assert message_of(plain)["content"][0]["text"] == text and final["usage"] == plain["usage"]


async def test_streamed_incomplete_and_refusal(emulator, session) -> None:
    server = await emulator()
    events = await stream_events(session, route(server.url), {"model": "gpt-4o", "input": "x",
                                                              "max_output_tokens": 16})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    events = await stream_events(session, route(server.url), {"model": "gpt-4o",
                                                              "input": f"x {fault_marker('refusal')}"})
    refused = "".join(e["delta"] for e in events if e["type"] == "response.refusal.delta")
    assert refused == REFUSAL and not any(e["type"] == "response.output_text.delta" for e in events)


async def test_stream_faults_cut_or_end_it_early(emulator, session) -> None:
    server = await emulator()
    body = {"model": "gpt-4o", "input": f"x {fault_marker('nofinish')}"}
    events = await stream_events(session, route(server.url), body)
    assert events[-1]["type"] == "response.output_item.done"  # ended cleanly, without response.completed
    async with session.post(route(server.url), json={**body, "input": f"x {fault_marker('truncate')}", "stream": True},
                            headers=AZURE_KEY_HEADERS) as answer:
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()
    assert server.stats()["by_status"].get("truncated") == 1
