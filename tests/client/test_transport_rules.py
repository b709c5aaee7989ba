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
    InsufficientQuotaError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
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
    ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
    ({"llm_provider-retry-after": "60"}, 60.0),  # LiteLLM's own rpm limit says it only this way
    ({"llm_provider-retry-after-ms": "250"}, 0.25),
    ({"x-ms-retry-after-ms": "1200"}, 1.2),
    ({"x-retry-after": "4"}, 4.0),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_of(headers) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-request-id": "svc", "x-litellm-call-id": "gw"}, "svc"),
    ({"llm_provider-x-request-id": "svc-behind-gateway", "x-litellm-call-id": "gw"}, "svc-behind-gateway"),
    ({"x-litellm-call-id": "gw-1"}, "gw-1"),
    ({"x-request-id": ""}, None),
])
def test_request_id_falls_back_to_the_gateways(headers: dict[str, str], expected: str | None) -> None:
    assert status_error(500, headers, b"").request_id == expected


QUOTA_BODY = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                        "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
TOO_LARGE = ("Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
             "Requested 50000. The input or output tokens must be reduced in order to run successfully.")
RATE_REACHED = ("Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
                "Used 29000, Requested 2000. Please try again in 2s.")


@pytest.mark.parametrize(("body", "cls", "retryable"), [
    (QUOTA_BODY, InsufficientQuotaError, False),
    ({"error": {"message": "billing", "type": "insufficient_quota", "code": None}}, InsufficientQuotaError, False),
    ({"error": {"message": TOO_LARGE, "type": "tokens", "code": "rate_limit_exceeded"}}, RequestTooLargeError, False),
    ({"error": {"message": RATE_REACHED, "type": "tokens", "code": "rate_limit_exceeded"}}, RateLimitError, True),
    ({"error": {"code": "429", "message": "Requests to the Embeddings_Create Operation have exceeded call rate limit"}},
     RateLimitError, True),
])
def test_which_429(body: dict, cls: type, retryable: bool) -> None:
    error = status_error(429, {}, json.dumps(body).encode())
    assert type(error) is cls and isinstance(error, RateLimitError)
    assert is_retryable(error) is retryable


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
