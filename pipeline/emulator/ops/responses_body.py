"""The Responses API's objects: a response, its output items and usage, at each stage of its life (no HTTP).

A response holds a reasoning item first when the model reasons (`{"type": "reasoning", "summary": []}`),
then one assistant message with one content part: `output_text`, or `refusal` when the model refuses.
An answer cut by its budget (max_output_tokens) or by the output filter leaves the response "incomplete"
with the reason in `incomplete_details`; one whose reasoning spent the whole budget has no message at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pipeline.emulator.ops.answers import Answer
from pipeline.emulator.ops.common import created
from pipeline.emulator.reasoning import DEFAULT_EFFORT

# Why an answer stopped -> the response's incomplete_details.reason (answers that stopped by themselves: none).
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def item_id(prefix: str) -> str:
    """An id in the Responses API's style: a prefix and 48 hex digits (resp_..., msg_..., rs_...)."""
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Reply:
    """One response: its answer, what the request asked, and the ids its objects share at every stage."""

    answer: Answer
    request: dict[str, Any]  # the request body
    model: str
    tier: str  # the service tier it was served at
    usage: dict[str, Any]
    reasons: bool  # a reasoning model: a reasoning item comes first
    id: str = field(default_factory=lambda: item_id("resp_"))
    message_id: str = field(default_factory=lambda: item_id("msg_"))
    reasoning_id: str = field(default_factory=lambda: item_id("rs_"))
    created_at: int = field(default_factory=created)

    @property
    def status(self) -> str:
        return "incomplete" if self.answer.finish_reason in INCOMPLETE_REASONS else "completed"

    @property
    def has_message(self) -> bool:
        return bool(self.answer.text) or self.answer.refusal is not None


def content_part(answer: Answer) -> dict[str, Any]:
    if answer.refusal is not None:
        return {"type": "refusal", "refusal": answer.refusal}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text or ""}


def message_item(reply: Reply, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": reply.message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def reasoning_item(reply: Reply) -> dict[str, Any]:
    return {"id": reply.reasoning_id, "type": "reasoning", "summary": []}


def output_items(reply: Reply) -> list[dict[str, Any]]:
    """The finished response's output: the reasoning item (reasoning models), then the message if any."""
    items = [reasoning_item(reply)] if reply.reasons else []
    if reply.has_message:
        items.append(message_item(reply, reply.status, [content_part(reply.answer)]))
    return items


def responses_usage(input_tokens: int, cached: int, answer: Answer) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        # cache_write_tokens counts explicit cache writes (prompt_cache_options), which the emulator has none of
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": answer.tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": input_tokens + answer.tokens,
    }


def response_object(reply: Reply, done: bool) -> dict[str, Any]:
    """The response as a plain answer or a stream's last event gives it (`done`), or as its first events
    give it: in progress, no output, no usage."""
    status = reply.status if done else "in_progress"
    incomplete = INCOMPLETE_REASONS.get(reply.answer.finish_reason) if done else None
    return {
        "id": reply.id,
        "object": "response",
        "created_at": reply.created_at,
        "status": status,
        "background": False,
        "completed_at": created() if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "output": output_items(reply) if done else [],
        "usage": reply.usage if done else None,
        "model": reply.model,
        "service_tier": reply.tier,
        "reasoning": {"effort": _effort(reply), "summary": None},
        "text": {"format": text_format_of(reply.request), "verbosity": "medium"},
        **_echoed(reply.request),
    }


def text_format_of(request: dict[str, Any]) -> dict[str, Any]:
    """The request's `text.format` ({"type": "text"} when it has none)."""
    text = request.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return fmt if isinstance(fmt, dict) else {"type": "text"}


def _effort(reply: Reply) -> str | None:
    if not reply.reasons:
        return None
    reasoning = reply.request.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return str(effort or DEFAULT_EFFORT)


def _echoed(request: dict[str, Any]) -> dict[str, Any]:
    """The request's settings a response repeats, with the service's defaults."""
    return {
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "safety_identifier": request.get("safety_identifier"),
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_logprobs": request.get("top_logprobs", 0),
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "user": request.get("user"),
    }
