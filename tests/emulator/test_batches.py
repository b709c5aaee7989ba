"""The emulator's Files and Batch APIs over HTTP: lifecycle, validation errors, expiry, line failures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from pipeline.emulator.batches import parse_input
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url, fault_marker

ROUTES = {"azure": ("/openai", "?api-version=2024-10-21", "/chat/completions"),
          "azure-v1": ("/openai/v1", "", "/v1/chat/completions"),
          "openai": ("/v1", "", "/v1/chat/completions")}


def chat_line(custom_id: str, text: str, url: str = "/chat/completions", model: str = "gpt-4o") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20}}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


class Api:
    """The batch routes of one flavour on one emulator."""

    def __init__(self, session: aiohttp.ClientSession, url: str, flavor: str = "azure") -> None:
        self.session = session
        prefix, self.query, self.endpoint = ROUTES[flavor]
        self.base = url + prefix

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.base}/{path}{self.query}", headers=AZURE_KEY_HEADERS,
                                        **kwargs) as resp:
            body = await resp.read()
            return resp.status, json.loads(body) if resp.content_type == "application/json" else body

    async def upload(self, data: bytes, purpose: str = "batch") -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("purpose", purpose)
        form.add_field("file", data, filename="in.jsonl", content_type="application/jsonl")
        return await self.call("POST", "files", data=form)

    async def run(self, data: bytes, endpoint: str | None = None) -> dict[str, Any]:
        status, uploaded = await self.upload(data)
        assert status == 200, uploaded
        status, batch = await self.call("POST", "batches", json={
            "input_file_id": uploaded["id"], "endpoint": endpoint or self.endpoint, "completion_window": "24h"})
        assert status == 200, batch
        return await self.wait(batch["id"])

    async def wait(self, batch_id: str) -> dict[str, Any]:
        for _ in range(500):
            status, batch = await self.call("GET", f"batches/{batch_id}")
            assert status == 200
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                return batch
            await asyncio.sleep(0.01)
        raise AssertionError("the batch never ended")

    async def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        status, data = await self.call("GET", f"files/{file_id}/content")
        assert status == 200
        return [json.loads(line) for line in data.splitlines() if line.strip()]


@pytest.mark.parametrize("flavor", list(ROUTES))
async def test_batch_lifecycle_and_output_equal_to_online(emulator, session, flavor: str) -> None:
    server = await emulator()
    api = Api(session, server.url, flavor)
    batch = await api.run(jsonl([chat_line(f"t{i}", f"question {i}", api.endpoint) for i in range(5)]))
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert batch["in_progress_at"] and batch["completed_at"] and batch["expires_at"] > batch["created_at"]
    output = await api.lines(batch["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == [f"t{i}" for i in range(5)]
    assert await api.lines(batch["error_file_id"]) == []
    first = next(line for line in output if line["custom_id"] == "t0")
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"] and first["error"] is None
    async with session.post(azure_url(server.url, "gpt-4o", "chat/completions"), headers=AZURE_KEY_HEADERS,
                            json=chat_line("x", "question 0")["body"]) as resp:
        online = await resp.json()
    assert first["response"]["body"]["choices"][0]["message"] == online["choices"][0]["message"]
    assert server.stats()["requests"] == 1  # batch lines are not online requests


async def test_openai_gives_no_error_file_on_success_azure_an_empty_one(emulator, session) -> None:
    server = await emulator()
    openai = await Api(session, server.url, "openai").run(jsonl([chat_line("a", "hi", "/v1/chat/completions")]))
    azure = await Api(session, server.url, "azure").run(jsonl([chat_line("a", "hi")]))
    assert openai["error_file_id"] is None
    assert azure["error_file_id"] is not None


async def test_embeddings_batch_on_openai_route_only(emulator, session) -> None:
    server = await emulator()
    line = {"custom_id": "e1", "method": "POST", "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "hello"}}
    batch = await Api(session, server.url, "openai").run(jsonl([line]), "/v1/embeddings")
    [out] = await Api(session, server.url, "openai").lines(batch["output_file_id"])
    assert len(out["response"]["body"]["data"][0]["embedding"]) == 1536
    api = Api(session, server.url, "azure")
    _, uploaded = await api.upload(jsonl([line]))
    status, body = await api.call("POST", "batches", json={"input_file_id": uploaded["id"],
                                                           "endpoint": "/embeddings", "completion_window": "24h"})
    assert status == 400 and body["error"]["param"] == "endpoint"


@pytest.mark.parametrize(("lines", "code"), [
    ([], "empty_file"),
    (["not json"], "invalid_json_line"),
    ([chat_line("a", "x", url="/completions")], "url_mismatch"),
    ([chat_line("a", "x"), chat_line("b", "x", model="gpt-4o-mini")], "model_mismatch"),
    ([chat_line("a", "x"), chat_line("a", "y")], "duplicate_custom_id"),
    ([chat_line(str(i), "x") for i in range(4)], "too_many_tasks"),
])
def test_input_validation_errors(lines: list[Any], code: str) -> None:
    data = b"".join((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines)
    _, problems = parse_input(data, "/chat/completions", max_lines=3)
    assert problems and problems[0]["code"] == code


async def test_invalid_file_fails_the_batch_with_errors(emulator, session) -> None:
    server = await emulator()
    batch = await Api(session, server.url).run(jsonl([chat_line("a", "x"), chat_line("a", "y")]))
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "duplicate_custom_id" and batch["errors"]["data"][0]["line"] == 2


async def test_too_many_tasks_follows_max_lines_setting(emulator, session) -> None:
    server = await emulator()
    async with session.post(server.url + "/_emulator/batches", json={"max_lines": 2}) as resp:
        assert (await resp.json())["settings"]["max_lines"] == 2
    batch = await Api(session, server.url).run(jsonl([chat_line(str(i), "x") for i in range(3)]))
    assert batch["errors"]["data"][0]["code"] == "too_many_tasks"


async def test_expired_batch_answers_part_and_lists_the_rest(emulator, session) -> None:
    server = await emulator()
    async with session.post(server.url + "/_emulator/batches", json={"expire": True, "expire_fraction": 0.5}):
        pass
    api = Api(session, server.url)
    batch = await api.run(jsonl([chat_line(f"t{i}", f"q {i}") for i in range(10)]))
    assert batch["status"] == "expired" and batch["request_counts"]["completed"] == 5
    errors = await api.lines(batch["error_file_id"])
    assert {e["error"]["code"] for e in errors} == {"batch_expired"} and len(errors) == 5


async def test_line_failures_inside_a_batch(emulator, session) -> None:
    server = await emulator()
    api = Api(session, server.url)
    batch = await api.run(jsonl([chat_line("ok", "fine"), chat_line("bf", "please [[batchfail]]"),
                                 chat_line("f5", f"x {fault_marker('500', 1)}"), chat_line("cf", "BLOCKME")]))
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 4, "completed": 1, "failed": 3}
    errors = {e["custom_id"]: e for e in await api.lines(batch["error_file_id"])}
    assert errors["bf"]["response"] is None and errors["bf"]["error"]["code"] == "server_error"
    assert errors["f5"]["response"]["status_code"] == 500
    assert errors["cf"]["response"]["body"]["error"]["code"] == "content_filter"


async def test_cancel_list_and_delete(emulator, session) -> None:
    server = await emulator()
    async with session.post(server.url + "/_emulator/batches", json={"processing_delay_s": 5}):
        pass
    api = Api(session, server.url)
    _, uploaded = await api.upload(jsonl([chat_line("a", "x")]))
    _, created = await api.call("POST", "batches", json={"input_file_id": uploaded["id"],
                                                         "endpoint": "/chat/completions", "completion_window": "24h"})
    status, listed = await api.call("GET", "batches", params={"limit": "5"})
    assert status == 200 and listed["data"][0]["id"] == created["id"]
    status, cancelling = await api.call("POST", f"batches/{created['id']}/cancel")
    assert status == 200 and cancelling["status"] == "cancelling"
    assert (await api.wait(created["id"]))["status"] == "cancelled"
    status, deleted = await api.call("DELETE", f"files/{uploaded['id']}")
    assert status == 200 and deleted["deleted"] is True
    status, _ = await api.call("GET", f"files/{uploaded['id']}")
    assert status == 404
    async with session.get(server.url + "/_emulator/batches") as resp:
        counters = (await resp.json())["counters"]
    assert counters["uploads"] == 1 and counters["batches_created"] == 1 and counters["cancels"] == 1


async def test_checks_auth_api_version_and_purpose(emulator, session) -> None:
    server = await emulator(api_key="secret")
    async with session.get(server.url + "/openai/batches?api-version=2024-10-21") as resp:
        assert resp.status == 401
    async with session.get(server.url + "/openai/batches", headers={"api-key": "secret"}) as resp:
        assert resp.status == 404
    server.configure(api_key=None)
    status, body = await Api(session, server.url).upload(b"{}\n", purpose="fine-tune")
    assert status == 400 and body["error"]["param"] == "purpose"
    status, body = await Api(session, server.url).call("POST", "batches", json={
        "input_file_id": "file-nope", "endpoint": "/chat/completions", "completion_window": "24h"})
    assert status == 404


async def test_settings_route_refuses_unknown_or_mistyped_fields(emulator, session) -> None:
    server = await emulator()
    for bad in ({"nope": 1}, {"expire": "yes"}, {"processing_delay_s": True}):
        async with session.post(server.url + "/_emulator/batches", json=bad) as resp:
            assert resp.status == 400


def responses_line(custom_id: str, text: str, url: str = "/v1/responses") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url,
            "body": {"model": "gpt-4o", "input": text, "max_output_tokens": 50}}


@pytest.mark.parametrize(("flavor", "url"), [("azure", "/v1/responses"), ("azure-v1", "/responses"),
                                             ("openai", "/v1/responses")])
async def test_responses_lines_are_answered_with_responses(emulator, session, flavor: str, url: str) -> None:
    server = await emulator()
    api = Api(session, server.url, flavor)
    lines = [responses_line("r0", "first question", url), responses_line("r1", f"x {fault_marker('refusal')}", url)]
    batch = await api.run(jsonl(lines), url)
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 2
    bodies = {line["custom_id"]: line["response"]["body"] for line in await api.lines(batch["output_file_id"])}
    assert bodies["r0"]["object"] == "response" and bodies["r0"]["status"] == "completed"
    assert bodies["r0"]["output"][0]["content"][0]["type"] == "output_text"
    assert bodies["r1"]["output"][0]["content"][0]["type"] == "refusal"
    async with session.post(f"{server.url}/v1/responses", headers=AZURE_KEY_HEADERS,
                            json=responses_line("x", "first question")["body"]) as resp:
        online = await resp.json()
    assert bodies["r0"]["output"][0]["content"] == online["output"][0]["content"]
