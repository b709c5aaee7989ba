"""Server-sent events the way the services stream: `data: {json}` lines, then `[DONE]` (chat, completions);
named `event:` lines before each `data:` and no `[DONE]` (the Responses API)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from pipeline.emulator.exchange import Exchange


async def open_stream(x: Exchange) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(x.request)
    return response


async def send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")


async def send_named(response: web.StreamResponse, name: str, event: dict[str, Any]) -> None:
    """An event with its name on an `event:` line too, as OpenAI streams the Responses API."""
    await response.write(f"event: {name}\n".encode() + b"data: " + json.dumps(event).encode() + b"\n\n")


async def finish(x: Exchange, response: web.StreamResponse) -> web.StreamResponse:
    """End the stream with [DONE], or (truncate fault) drop the connection before it."""
    if x.truncate:
        return cut(x, response)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def cut(x: Exchange, response: web.StreamResponse) -> web.StreamResponse:
    """Drop the connection mid-stream (truncate fault), as a reset or a crashed backend does."""
    x.outcome = "truncated"
    if x.request.transport is not None:
        x.request.transport.close()
    return response


async def pause(x: Exchange) -> None:
    """The time one streamed token takes (latency_per_token_ms)."""
    if x.config.latency_per_token_ms > 0:
        await asyncio.sleep(x.config.latency_per_token_ms / 1000)


def wants_usage(x: Exchange) -> bool:
    options = x.body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))
