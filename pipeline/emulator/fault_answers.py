"""How injected faults answer: error statuses, dropped connections, cut bodies, spoiled answers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator import bodies
from pipeline.emulator.exchange import Exchange, Rejection
from pipeline.emulator.faults import ANSWER_KINDS, Fault
from pipeline.emulator.headers import retry_headers

# What an `invalidjson` fault sends: a 200 whose body stops mid-object.
BROKEN_JSON = b'{"id": "broken", "object": "list", "data": [{"obj'


def fault_rejection(x: Exchange, fault: Fault, status: int) -> Rejection:
    """The error answer of a status fault; 429 carries retry-after unless it is `429bare`."""
    if status == 429:
        headers = retry_headers(x.config.fault_retry_after_ms / 1000) if fault.kind == "429" else {}
        limit = x.decision.limit_requests if x.decision else 0
        body = bodies.rate_limited(x.azure, x.op.azure_name, x.api_version, 1, "requests", x.model, limit)
        return Rejection(429, body, headers)
    if status == 401:
        return Rejection(401, bodies.unauthorized(x.azure, "key"))
    return Rejection(status, bodies.fault_body(x.azure, status))


def drop(x: Exchange) -> web.StreamResponse:
    """Close the connection without a word, as a crashed backend or a reset does."""
    x.outcome = "dropped"
    if x.request.transport is not None:
        x.request.transport.close()
    return web.Response(status=500)  # never sent: the connection is already closed


async def send_truncated(x: Exchange, full: web.Response) -> web.StreamResponse:
    """Headers promising the whole body, half of it, then a closed connection."""
    body = full.body if isinstance(full.body, bytes) else b""
    response = web.StreamResponse(status=full.status, headers={"Content-Type": full.headers["Content-Type"]})
    response.content_length = len(body)
    await response.prepare(x.request)
    await response.write(body[: len(body) // 2])
    x.outcome = "truncated"
    if x.request.transport is not None:
        x.request.transport.close()
    return response


def answer_fault(x: Exchange) -> str | None:
    """The answer fault (faults.ANSWER_KINDS) a marker asks of this answer, counted when the operation
    answers: the exchange's own faults (flow.py) are picked before and never see these kinds."""
    fault = x.state.faults.from_markers(x.op.texts(x), ANSWER_KINDS)
    if fault is None:
        return None
    x.state.stats.faults[fault.kind] += 1
    return fault.kind


def spoil_usage(usage: dict[str, Any], fault: str | None, key: str = "prompt_tokens") -> dict[str, Any]:
    """`nanusage`: prompt_tokens (Responses: input_tokens) NaN, which json.dumps writes as a bare `NaN`."""
    return {**usage, key: float("nan")} if fault == "nanusage" else usage
