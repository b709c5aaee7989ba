"""Response headers every answer carries: request ids, region, rate-limit headroom."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import MutableMapping

from aiohttp import web

from pipeline.emulator.exchange import Exchange
from pipeline.emulator.gateway import id_headers
from pipeline.emulator.quotas import Decision, Limits

EXCHANGE = web.RequestKey("emulator.exchange", Exchange)  # set once the route is known
STARTED = web.RequestKey("emulator.started", float)


def limits_of(x: Exchange) -> Limits:
    return Limits(x.config.rpm, x.config.tpm, x.config.window_s, x.config.window_kind)


def retry_headers(seconds: float) -> dict[str, str]:
    """Azure's pair: whole seconds (rounded up, at least 1) and the exact milliseconds."""
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: runs for every answer, streamed or not, error or not."""
    x: Exchange | None = request.get(EXCHANGE)
    if x is None:
        return
    headers = response.headers
    headers.update(id_headers(x.config, x.request_id) or {
        "apim-request-id": x.request_id,
        "x-request-id": x.request_id if x.azure else "req_" + uuid.UUID(x.request_id).hex,
    })
    headers["x-ms-region"] = x.config.region
    decision = _decision(x) if x.rate_headers else None
    if decision is not None:
        _add_rate_headers(x, headers, decision)
    if not x.azure:
        headers["openai-version"] = "2020-10-01"
        started = request.get(STARTED, time.monotonic())
        headers["openai-processing-ms"] = str(int((time.monotonic() - started) * 1000))


def _decision(x: Exchange) -> Decision | None:
    if x.decision is None and x.deployment:
        x.decision = x.state.quotas.peek(x.deployment, x.state.clock(), limits_of(x))
    return x.decision


def _add_rate_headers(x: Exchange, headers: MutableMapping[str, str], decision: Decision) -> None:
    headers["x-ratelimit-limit-requests"] = str(decision.limit_requests)
    headers["x-ratelimit-limit-tokens"] = str(decision.limit_tokens)
    headers["x-ratelimit-remaining-requests"] = str(decision.remaining_requests)
    headers["x-ratelimit-remaining-tokens"] = str(decision.remaining_tokens)
    if not x.azure:
        reset = f"{x.config.window_s:g}s"
        headers["x-ratelimit-reset-requests"] = reset
        headers["x-ratelimit-reset-tokens"] = reset
