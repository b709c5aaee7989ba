"""POST chat/completions: plain JSON or server-sent events."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator import filters
from pipeline.emulator.charges import chat_charge
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.fault_answers import answer_fault, spoil_usage
from pipeline.emulator.ops.answers import Answer, budget, chat_answer, chat_usage, filter_results, message_texts
from pipeline.emulator.ops.chat_stream import stream_chat
from pipeline.emulator.ops.common import (
    SERVICE_TIERS,
    cached_prompt_tokens,
    check_effort,
    choice_field,
    created,
    fingerprint,
    int_field,
    json_answer,
    new_id,
    pace_tokens,
    require,
    served_tier,
)
from pipeline.tokens import estimate_messages_tokens

CONTEXT_TOKENS = 128_000  # every chat deployment is treated as a 128k-context model
ROLES = ("system", "assistant", "user", "function", "tool", "developer")


def validate(x: Exchange) -> None:
    messages = require(x, "messages")
    if not isinstance(messages, list) or not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else message
            raise invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                f"messages[{index}].role",
                "invalid_value",
            )
    int_field(x, "n", 1, 1, 128)
    for name in ("max_tokens", "max_completion_tokens"):
        int_field(x, name, 1, 1)
    check_effort(x, "reasoning_effort", x.body.get("reasoning_effort"))
    choice_field(x, "service_tier", "auto", SERVICE_TIERS)
    _validate_options(x, messages)


def _validate_options(x: Exchange, messages: list[dict[str, Any]]) -> None:
    if x.body.get("stream_options") is not None and not x.body.get("stream"):
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    response_format = x.body.get("response_format") or {}
    kind = response_format.get("type", "text") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid("Invalid 'response_format': unknown type.", "response_format.type", "invalid_value")
    if kind == "json_object" and not any("json" in t.lower() for t in message_texts(messages)):
        raise invalid(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "messages",
        )
    if kind == "json_schema" and not (response_format.get("json_schema") or {}).get("name"):
        raise invalid(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    prompt = estimate_messages_tokens(messages)
    completion = budget(x.body) or 0
    if prompt + completion > CONTEXT_TOKENS:
        raise invalid(
            f"This model's maximum context length is {CONTEXT_TOKENS} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion.",
            "messages",
            "context_length_exceeded",
        )


def texts(x: Exchange) -> list[str]:
    return message_texts(x.body.get("messages"))


def answers(x: Exchange, fault: str | None = None) -> list[Answer]:
    n = x.body.get("n") or 1
    return [chat_answer(x.body, i, x.config.output_filter_word, x.deployment, fault) for i in range(n)]


async def respond(x: Exchange) -> web.StreamResponse:
    fault = answer_fault(x)
    choices = answers(x, fault)
    cached = cached_prompt_tokens(x, x.body["messages"], x.body.get("tools"))
    usage = spoil_usage(chat_usage(x.body, choices, cached), fault)
    if x.body.get("stream"):
        return await stream_chat(x, choices, usage, fault)
    await pace_tokens(x, sum(a.tokens for a in choices))
    body: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": created(),
        "model": x.model,
        "system_fingerprint": fingerprint(x),
        "choices": [_choice(x, i, a, fault) for i, a in enumerate(choices)],
        "usage": usage,
    }
    tier = served_tier(x)
    if tier is not None:
        body["service_tier"] = tier
    if x.azure:
        body["prompt_filter_results"] = filters.prompt_filter_results()
    return json_answer(body)


def _choice(x: Exchange, index: int, answer: Answer, fault: str | None) -> dict[str, Any]:
    content: Any = answer.text
    if fault == "contentparts" and answer.text is not None:  # as some OpenAI-compatible servers answer
        content = [{"type": "text", "text": piece} for piece in _halves(answer.text)]
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": answer.refusal}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    choice: dict[str, Any] = {
        "index": index,
        "finish_reason": answer.finish_reason,
        "logprobs": None,
        "message": message,
    }
    if x.azure:
        choice["content_filter_results"] = filter_results(answer)
    return choice


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


CHAT = Operation(
    path="chat/completions",
    azure_name="ChatCompletions_Create",
    respond=respond,
    validate=validate,
    texts=texts,
    charge=chat_charge,
    filter_style="prompt",
    tiers=True,
)
