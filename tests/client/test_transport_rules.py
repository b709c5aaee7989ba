"""Pure rules of the transport layer: status -> error class, retry-after parsing, retryable set."""

from __future__ import annotations

import json

import pytest

from pipeline.client.transport import retry_after_of, status_error
from pipeline.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContentFilterError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    is_retryable,
)


@pytest.mark.parametrize(("status", "cls", "retryable"), [
    (400, BadRequestError, False), (401, AuthenticationError, False), (403, PermissionDeniedError, False),
    (404, NotFoundError, False), (408, None, True), (409, ConflictError, True), (413, None, False),
    (422, UnprocessableEntityError, False), (429, RateLimitError, True), (500, InternalServerError, True),
    (502, InternalServerError, True), (503, InternalServerError, True), (504, InternalServerError, True),
])
def test_status_to_error_class(status: int, cls: type | None, retryable: bool) -> None:
    error = status_error(status, {"x-request-id": "req-1"}, b'{"error": {"code": "x", "message": "m"}}')
    if cls is not None:
        assert type(error) is cls
    assert error.status == status and error.request_id == "req-1" and error.code == "x"
    assert is_retryable(error) is retryable


@pytest.mark.parametrize("error", [APIConnectionError("reset"), APITimeoutError("slow"),
                                   InvalidResponseError("bad json")])
def test_transport_failures_are_retryable(error: Exception) -> None:
    assert is_retryable(error)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_of(headers) == expected


def test_retry_after_http_date() -> None:
    value = retry_after_of({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert value == 0.0  # in the past


CHAT_BLOCK = {"error": {"message": "filtered", "type": None, "param": "prompt", "code": "content_filter",
                        "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                      "content_filter_result": {"hate": {"filtered": True}}}}}
IMAGE_BLOCK = {"error": {"code": "content_policy_violation", "message": "rejected",
                         "inner_error": {"code": "ResponsibleAIPolicyViolation",
                                         "content_filter_results": {"violence": {"filtered": True}}}}}


@pytest.mark.parametrize("body", [CHAT_BLOCK, IMAGE_BLOCK])
def test_content_filter_both_spellings(body: dict) -> None:
    error = status_error(400, {"apim-request-id": "apim-7"}, json.dumps(body).encode())
    assert isinstance(error, ContentFilterError)
    assert error.request_id == "apim-7"
    assert error.detail and "filtered" in error.detail
    assert not is_retryable(error)


def test_secret_in_error_message_is_redacted() -> None:
    from pipeline.redact import register_secret

    register_secret("sk-very-secret-value")
    error = status_error(401, {}, b'{"error": {"code": "401", "message": "bad key sk-very-secret-value"}}')
    assert "sk-very-secret-value" not in str(error)
