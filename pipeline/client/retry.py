"""Retry policy as tenacity values: stop after N attempts, wait retry-after or exponential + jitter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential_jitter

from pipeline.errors import AnswerCountError, APIError, SchemaMismatchError, is_retryable


class wait_retry_after(wait_base):
    """The service's retry-after when it gave one (capped), else the fallback wait."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, APIError) and error.retry_after is not None:
            return min(error.retry_after, self.cap)
        return float(self.fallback(retry_state))


def splits_instead(error: BaseException) -> bool:
    """A miscounted answer to several inputs: sent again unchanged it would be answered the same way,
    so it is not retried; the online engine halves the batch instead (online/job.py, blames_content)."""
    return isinstance(error, AnswerCountError) and error.expected > 1


# Transient failures, except those the online engine answers by splitting the batch.
retry_transient = retry_if_exception(is_retryable) & retry_if_exception(lambda error: not splits_instead(error))


class stop_schema_mismatch(stop_base):
    """Stop once an answer has missed the output schema on `attempts` attempts: a model that answered off the
    schema may be right the next time, but each attempt is paid for ([limits] schema_attempts)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return isinstance(error, SchemaMismatchError) and retry_state.attempt_number >= self.attempts


def retry_policy(max_attempts: int, max_wait: float,
                 before_sleep: Callable[[RetryCallState], Any] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 schema_attempts: int = 2) -> AsyncRetrying:
    """The shared policy; call `.copy()` for each request (tenacity keeps per-call state on it)."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts) | stop_schema_mismatch(schema_attempts),
        retry=retry_transient,
        wait=wait_retry_after(wait_exponential_jitter(multiplier=0.5, max=min(8.0, max_wait), jitter=0.5), max_wait),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


def retry_cause(error: BaseException | None) -> str:
    """Group retries for the summary: 429, 5xx, timeout, connection, other."""
    from pipeline.errors import APIConnectionError, APIStatusError, APITimeoutError

    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection"
    if isinstance(error, APIStatusError):
        if error.status == 429:
            return "429"
        if (error.status or 0) >= 500:
            return "5xx"
    return "other"
