"""Chat completions as server-sent events, in the order and shape Azure streams them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator import filters
from pipeline.emulator.exchange import Exchange
from pipeline.emulator.ops import sse
from pipeline.emulator.ops.answers import Answer, filter_results
from pipeline.emulator.ops.common import created, fingerprint, new_id, served_tier


async def stream_chat(
    x: Exchange, choices: list[Answer], usage: dict[str, Any], fault: str | None = None
) -> web.StreamResponse:
    """Azure's order: prompt filter results, then per choice a role chunk, deltas, a finish chunk
    (whose finish_reason the `nofinish` fault leaves null); `usage` last if the request asked for it."""
    response = await sse.open_stream(x)
    frame = _Frame(x)
    if x.azure:
        await sse.send(
            response,
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": filters.prompt_filter_results(),
            },
        )
    for index, answer in enumerate(choices):
        await sse.send(response, frame.chunk(index, _role_delta(answer), None, {}))
        for delta in _deltas(answer):
            await sse.pause(x)
            await sse.send(response, frame.chunk(index, delta, None, filters.choice_results()))
        finish = None if fault == "nofinish" else answer.finish_reason
        await sse.send(response, frame.chunk(index, {}, finish, filter_results(answer)))
    if sse.wants_usage(x):
        await sse.send(response, frame.usage_chunk(usage))
    return await sse.finish(x, response)


def _role_delta(answer: Answer) -> dict[str, Any]:
    """The first chunk of a choice; a refusal streams in `refusal` deltas, its content staying null."""
    if answer.refusal is not None:
        return {"role": "assistant", "content": None, "refusal": ""}
    return {"role": "assistant", "content": "", "refusal": None}


def _deltas(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_calls:
        return [{"tool_calls": [dict(call, index=i) for i, call in enumerate(answer.tool_calls)]}]
    key, text = ("refusal", answer.refusal) if answer.refusal is not None else ("content", answer.text or "")
    words = text.split(" ")
    return [{key: word if i == 0 else " " + word} for i, word in enumerate(words) if word or i == 0]


class _Frame:
    """The fields every chunk of one stream shares."""

    def __init__(self, x: Exchange) -> None:
        self.x = x
        self.base = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": created(),
            "model": x.model,
            "system_fingerprint": fingerprint(x),
        }
        tier = served_tier(x)
        if tier is not None:
            self.base["service_tier"] = tier
        self.include_usage = sse.wants_usage(x)

    def chunk(self, index: int, delta: dict[str, Any], finish: str | None, results: dict[str, Any]) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if self.x.azure:
            choice["content_filter_results"] = results
        event = dict(self.base, choices=[choice])
        if self.include_usage:
            event["usage"] = None
        return event

    def usage_chunk(self, usage_body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.base, choices=[], usage=usage_body)
