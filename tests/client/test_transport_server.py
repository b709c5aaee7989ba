"""send_once against a real server that misbehaves: error events, bad bytes, redirects, huge answers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from pipeline.client.transport import ANSWER_CAPS, AnswerTooLargeError, MiB, answer_cap, fetch_bytes, send_once
from pipeline.endpoints.base import HttpResponse, Request
from pipeline.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    is_retryable,
)

from ..servers.misbehaving import (
    MisbehavingServer,
    chat_answer,
    chat_body,
    chunk_event,
    error_event,
    gzip_bomb,
    html_page,
    huge_length,
    huge_stream,
    json_answer,
    raw_answer,
    redirect,
    sse,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)
KEY = {"api-key": "secret-key-123", "Authorization": "Bearer secret-token-456"}


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(session: aiohttp.ClientSession, base: str, accept: str = "json", op: str = "chat/completions",
               max_bytes: int | None = None) -> HttpResponse:
    request = Request(op, [], json={"messages": []}, accept=accept)  # type: ignore[arg-type]
    return await send_once(session, f"{base}/{op}", dict(KEY), request, b"{}", TIMEOUT, max_bytes=max_bytes)


async def failure(session: aiohttp.ClientSession, base: str, accept: str = "json",
                  max_bytes: int | None = None) -> APIError:
    with pytest.raises(APIError) as caught:
        await post(session, base, accept, max_bytes=max_bytes)
    return caught.value


# ------------------------------------------------------------------------------- streamed answers

@pytest.mark.parametrize(("event", "cls", "status", "code"), [
    (error_event("context_length_exceeded", "too long", "invalid_request_error"), BadRequestError, 400,
     "context_length_exceeded"),
    (error_event("content_filter", "filtered", "invalid_request_error"), ContentFilterError, 400, "content_filter"),
    (error_event(None, "The server had an error", "server_error"), InternalServerError, 500, "server_error"),
    (error_event(None, "Overloaded", "overloaded_error"), InternalServerError, 503, "overloaded_error"),
    (error_event("rate_limit_exceeded", "slow down", "requests"), RateLimitError, 429, "rate_limit_exceeded"),
    (error_event("429", "Requests exceeded the limit"), RateLimitError, 429, "429"),
    (error_event("invalid_api_key", "bad key", "invalid_request_error"), AuthenticationError, 401,
     "invalid_api_key"),
    (error_event("model_not_found", "no model"), NotFoundError, 404, "model_not_found"),
    (error_event("weird", "who knows", "mystery"), InternalServerError, 500, "weird"),
    (error_event("x", "declared", "server_error", status=403), PermissionDeniedError, 403, "x"),
    (error_event("x", "declared", status_code=400), BadRequestError, 400, "x"),
    (error_event("invalid_prompt", "named event", "invalid_request_error", named=True), BadRequestError, 400,
     "invalid_prompt"),
    (b"event: error\ndata: {\"message\": \"bare named\", \"code\": \"server_error\"}\n\n", InternalServerError,
     500, "server_error"),
    (b'data: {"error": "upstream went away"}\n\n', InternalServerError, 500, None),
])
async def test_error_event_in_stream_is_the_typed_error_it_carries(server, session, event: bytes, cls: type,
                                                                   status: int, code: str | None) -> None:
    base = server.script("s", sse(chunk_event("partial "), chunk_event("answer"), event))
    error = await failure(session, base, "sse")
    assert type(error) is cls, error
    assert error.status == status and error.code == code
    assert error.message and error.message != "the event stream ended before [DONE]"
    assert is_retryable(error) is (status >= 500 or status == 429)


async def test_invalid_utf8_line_is_a_retryable_connection_error(server, session) -> None:
    base = server.script("s", sse(chunk_event("fine"), b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n'))
    error = await failure(session, base, "sse")
    assert isinstance(error, APIConnectionError) and is_retryable(error)
    assert "UTF-8" in error.message


async def test_stream_line_longer_than_aiohttps_line_limit_is_read(server, session) -> None:
    base = server.script("s", sse(chunk_event("y" * 2_000_000)))  # aiohttp's readline stops at 512 KiB
    response = await post(session, base, "sse")
    assert len(response.events[0]["choices"][0]["delta"]["content"]) == 2_000_000


async def test_stream_refused_with_a_json_error_in_a_200(server, session) -> None:
    base = server.script("s", json_answer({"error": {"code": "invalid_request_error", "message": "no stream"}}))
    error = await failure(session, base, "sse")
    assert type(error) is BadRequestError and error.message == "no stream"


async def test_stream_over_the_cap_stops_reading(server, session) -> None:
    events = [chunk_event("z" * 60_000) for _ in range(100)]  # ~6 MB
    base = server.script("s", sse(*events))
    error = await failure(session, base, "sse", max_bytes=MiB)
    assert isinstance(error, AnswerTooLargeError) and not is_retryable(error)


# ------------------------------------------------------------------------------ errors inside 200s

@pytest.mark.parametrize(("body", "cls", "status"), [
    (b'{"error": {"code": "invalid_request_error", "message": "bad"}}', BadRequestError, 400),
    (b'  \n{ "error" : {"code": "429", "message": "quota"}}', RateLimitError, 429),
    (b'{"error": {"message": "upstream timeout", "type": "server_error"}}', InternalServerError, 500),
    (b'{"error": {"message": "declared", "status": 404}}', NotFoundError, 404),
])
async def test_error_object_in_a_200_is_a_typed_error(server, session, body: bytes, cls: type, status: int) -> None:
    error = await failure(session, server.script("s", raw_answer(body)))
    assert type(error) is cls and error.status == status


async def test_answer_with_a_null_error_field_is_an_answer(server, session) -> None:
    body = {"error": None, **chat_body("fine")}
    response = await post(session, server.script("s", json_answer(body)))
    assert response.json()["choices"][0]["message"]["content"] == "fine"


@pytest.mark.parametrize(("status", "cls"), [(502, InternalServerError), (200, InvalidResponseError)])
async def test_html_page_gives_its_first_line(server, session, status: int, cls: type) -> None:
    error = await failure(session, server.script("s", html_page(status, "502 Bad Gateway", "try later")))
    assert type(error) is cls
    assert "502 Bad Gateway" in error.message and "<" not in error.message and "color" not in error.message


async def test_huge_error_body_is_read_only_in_part(server, session) -> None:
    started = time.monotonic()
    error = await failure(session, server.script("s", huge_stream(300 * MiB, status=500)))
    assert type(error) is InternalServerError and len(error.message) <= 300
    assert time.monotonic() - started < 3


# ------------------------------------------------------------------------------------- redirects

@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_to_another_origin_is_refused_and_never_followed(session, status: int) -> None:
    with MisbehavingServer() as service, MisbehavingServer() as other:
        other.script("v1", chat_answer("stolen"))
        base = service.script("v1", redirect(f"{other.url}/v1/chat/completions", status))
        error = await failure(session, base)
        assert other.seen() == []
    assert type(error) is APIStatusError and error.status == status and error.code == "redirect"
    assert not is_retryable(error)
    assert f"redirected to {other.url};" in error.message
    assert "refusing to send credentials to another origin" in error.message


async def test_same_origin_redirect_is_refused_too(server, session) -> None:
    server.script("new", chat_answer())
    error = await failure(session, server.script("old", redirect("/new/chat/completions?sig=abc")))
    assert error.status == 307 and "redirects are not followed" in error.message
    assert f"{server.url}/new/chat/completions;" in error.message and "sig=abc" not in error.message
    assert server.seen("new") == []


async def test_download_follows_redirects_and_is_capped(server, session) -> None:
    server.script("blob", raw_answer(b"PNG" * 1000, content_type="image/png"))
    base = server.script("signed", redirect(f"{server.url}/blob/image.png"))
    assert await fetch_bytes(session, f"{base}/x", TIMEOUT) == b"PNG" * 1000
    with pytest.raises(AnswerTooLargeError):
        await fetch_bytes(session, f"{base}/x", TIMEOUT, max_bytes=1024)


# ----------------------------------------------------------------------------------- answer caps

async def test_huge_body_without_length_fails_at_the_cap(server, session) -> None:
    started = time.monotonic()
    error = await failure(session, server.script("s", huge_stream(200 * MiB)), max_bytes=2 * MiB)
    assert isinstance(error, AnswerTooLargeError) and not is_retryable(error)
    assert error.code == "answer_too_large" and "2 MiB cap" in error.message
    assert "[limits] max_answer_bytes" in error.message
    assert time.monotonic() - started < 3


async def test_announced_length_over_the_cap_fails_before_reading(server, session) -> None:
    started = time.monotonic()
    error = await failure(session, server.script("s", huge_length(10**10)))
    assert isinstance(error, AnswerTooLargeError) and f"announced {10**10} bytes" in error.message
    assert time.monotonic() - started < 2  # the server stalls after 64 KB: nothing more was awaited


async def test_compressed_body_is_capped_by_its_inflated_size(server, session) -> None:
    error = await failure(session, server.script("s", gzip_bomb(32 * MiB)), max_bytes=MiB)
    assert isinstance(error, AnswerTooLargeError)


async def test_answer_at_the_cap_is_read(server, session) -> None:
    body = json.dumps(chat_body("w" * 100_000)).encode()
    response = await post(session, server.script("s", raw_answer(body)), max_bytes=len(body))
    assert response.body == body


def test_caps_per_route() -> None:
    assert answer_cap("embeddings") == ANSWER_CAPS["embeddings"] >= 2048 * 3072 * 13  # a JSON float list
    assert answer_cap("chat/completions") < answer_cap("images/generations")
    assert answer_cap("audio/speech", 5000) == 5000


# ------------------------------------------------------------------------------ Responses streams

def responses_delta(text: str) -> bytes:
    """A typed Responses event as the API streams it: an `event:` line naming its type, then its data."""
    event = {"type": "response.output_text.delta", "delta": text}
    return b"event: response.output_text.delta\ndata: " + json.dumps(event).encode() + b"\n\n"


async def post_responses(session: aiohttp.ClientSession, base: str) -> HttpResponse:
    request = Request("responses", [], json={"input": "hi"}, accept="sse", done_marker=False)
    return await send_once(session, f"{base}/responses", dict(KEY), request, b"{}", TIMEOUT)


async def test_a_responses_stream_ends_with_the_body_not_done(server, session) -> None:
    created = {"type": "response.created", "response": {"status": "in_progress"}}
    completed = {"type": "response.completed", "response": {"status": "completed"}}
    base = server.script("s", sse(created, responses_delta("Hel"), responses_delta("lo"), completed, done=False))
    response = await post_responses(session, base)
    assert [e["type"] for e in response.events] == ["response.created", "response.output_text.delta",
                                                    "response.output_text.delta", "response.completed"]
    assert response.ttft_s is not None and response.ttft_s <= response.latency_s
    with pytest.raises(APIConnectionError, match=r"ended before \[DONE\]"):  # a chat stream must still reach it
        await post(session, base, "sse")


@pytest.mark.parametrize("event", [
    b'event: error\ndata: {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}\n\n',
    b'data: {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}\n\n',
])
async def test_a_responses_error_event_is_the_typed_error(server, session, event: bytes) -> None:
    base = server.script("s", sse(responses_delta("Hel"), event, done=False))
    with pytest.raises(RateLimitError, match="slow down") as caught:
        await post_responses(session, base)
    assert caught.value.code == "rate_limit_exceeded" and is_retryable(caught.value)
