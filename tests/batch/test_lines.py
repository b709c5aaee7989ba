"""Batch line and file formats without a server: URLs, bodies, splitting, reading output lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.batch.lines import (
    BatchLineError,
    InputFileWriter,
    LineResponse,
    file_limits,
    input_line,
    line_body,
    read_output_line,
)
from pipeline.client.urls import api_url, batch_endpoint
from pipeline.errors import BadRequestError, ContentFilterError, InternalServerError
from pipeline.spec import ServiceSpec

AZURE = ServiceSpec(provider="azure", deployment="gpt-4o-batch", api_version="2024-10-21")
AZURE_V1 = ServiceSpec(provider="azure", deployment="gpt-4o-batch", api_style="v1")
OPENAI = ServiceSpec(provider="openai", model="gpt-4o-mini")


@pytest.mark.parametrize(("service", "base", "url", "endpoint", "lines"), [
    (AZURE, "https://r.openai.azure.com/", "https://r.openai.azure.com/openai/files?api-version=2024-10-21",
     "/chat/completions", 100_000),
    (AZURE_V1, "https://r.openai.azure.com/openai/v1", "https://r.openai.azure.com/openai/v1/files",
     "/v1/chat/completions", 100_000),
    (OPENAI, "https://api.openai.com/v1", "https://api.openai.com/v1/files", "/v1/chat/completions", 50_000),
])
def test_routes_and_limits_per_service(service: ServiceSpec, base: str, url: str, endpoint: str, lines: int) -> None:
    assert api_url(service, base, "files") == url
    assert batch_endpoint(service, "chat/completions") == endpoint
    assert file_limits(service) == (lines, 200_000_000)


def test_line_body_names_the_model_and_never_streams() -> None:
    body = line_body({"messages": [], "stream": True, "stream_options": {"include_usage": True}}, "dep")
    assert body == {"messages": [], "model": "dep"}
    line = json.loads(input_line("r1", "/chat/completions", body))
    assert line == {"custom_id": "r1", "method": "POST", "url": "/chat/completions", "body": body}


def test_writer_splits_at_line_and_byte_limits(tmp_path: Path) -> None:
    writer = InputFileWriter(tmp_path, 7, max_lines=3, max_bytes=25)
    closed = [writer.add({"id": f"r{i}", "line": i + 1}, b"x" * 10 + b"\n") for i in range(5)]
    last = writer.close()
    files = [f for f in closed if f] + [last]
    # 11-byte lines: 2 per file under 25 bytes, so the byte limit splits before the line limit
    assert [(f.number, f.lines, f.bytes) for f in files if f] == [(7, 2, 22), (8, 2, 22), (9, 1, 11)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "input-000007.ids.jsonl", "input-000007.jsonl", "input-000008.ids.jsonl", "input-000008.jsonl",
        "input-000009.ids.jsonl", "input-000009.jsonl"]
    ids = [json.loads(t) for t in (tmp_path / "input-000008.ids.jsonl").read_text().splitlines()]
    assert ids == [{"id": "r2", "line": 3}, {"id": "r3", "line": 4}]
    assert writer.close() is None


def test_writer_line_limit(tmp_path: Path) -> None:
    writer = InputFileWriter(tmp_path, 1, max_lines=2, max_bytes=10**6)
    closed = [writer.add({"id": str(i)}, b"{}\n") for i in range(4)]
    assert [c.lines for c in closed if c] == [2] and writer.close().lines == 2  # type: ignore[union-attr]


def line(**fields: object) -> bytes:
    return json.dumps({"id": "batch_req_1", "custom_id": "r1", **fields}).encode()


def test_reading_a_successful_line() -> None:
    outcome = read_output_line(line(response={"status_code": 200, "request_id": "q1", "body": {"ok": 1}},
                                    error=None))
    assert outcome is not None and outcome.error is None
    assert (outcome.custom_id, outcome.status, outcome.body, outcome.request_id) == ("r1", 200, {"ok": 1}, "q1")
    response = LineResponse(200, {}, b"", 0.0, "q1", parsed=outcome.body)
    assert response.json() == {"ok": 1}


@pytest.mark.parametrize(("fields", "kind", "code", "not_run"), [
    ({"response": {"status_code": 400, "request_id": "q", "body": {"error": {"code": "bad", "message": "m"}}}},
     BadRequestError, "bad", False),
    ({"response": {"status_code": 400, "body": {"error": {"code": "content_filter", "message": "m",
                                                           "innererror": {"code": "ResponsibleAIPolicyViolation"}}}}},
     ContentFilterError, "content_filter", False),
    ({"response": {"status_code": 500, "body": None}}, InternalServerError, None, False),
    ({"response": None, "error": {"code": "server_error", "message": "boom"}}, BatchLineError, "server_error", False),
    ({"response": None, "error": {"code": "batch_expired", "message": "late"}}, BatchLineError, "batch_expired", True),
    ({"response": None, "error": None}, BatchLineError, "batch_line_failed", False),
])
def test_reading_failed_lines(fields: dict, kind: type, code: str | None, not_run: bool) -> None:
    outcome = read_output_line(line(**fields))
    assert outcome is not None and isinstance(outcome.error, kind)
    assert outcome.error.code == code and outcome.not_run is not_run


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"custom_id": 3}', b"\xff\xfe"])
def test_lines_that_are_not_output_lines(raw: bytes) -> None:
    assert read_output_line(raw) is None
