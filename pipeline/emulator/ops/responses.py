"""POST responses: the Responses API, plain JSON or server-sent events.

Routes: Azure v1 `/openai/v1/responses` and OpenAI `/v1/responses` (deployment or model in body `model`),
and Azure's preview `/openai/responses?api-version=2025-03-01-preview` or later (older versions get the
service's 400). Azure's deployment routes have no responses: a 404 there, as on the service.
The answer is the chat answer of the same conversation (the instructions as a developer message, then the
input): same seed, same text, same faults, usage and reasoning.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator.charges import responses_charge
from pipeline.emulator.exchange import Exchange, Operation, Rejection, invalid
from pipeline.emulator.fault_answers import answer_fault, spoil_usage
from pipeline.emulator.inputs import response_messages
from pipeline.emulator.ops.answers import Answer, Ask, answer_seed, conversation_key, generate, message_texts
from pipeline.emulator.ops.common import (
    SERVICE_TIERS,
    cached_prompt_tokens,
    check_choice,
    check_effort,
    choice_field,
    int_field,
    json_answer,
    pace_tokens,
    require,
    served_tier,
)
from pipeline.emulator.ops.responses_body import Reply, response_object, responses_usage, text_format_of
from pipeline.emulator.ops.responses_stream import stream_response
from pipeline.emulator.prose import seed_of
from pipeline.emulator.reasoning import is_reasoning_model, reasoning_tokens
from pipeline.tokens import estimate_messages_tokens

CONTEXT_TOKENS = 128_000  # as chat: every deployment is treated as a 128k-context model
MIN_OUTPUT_TOKENS = 16
ROLES = ("assistant", "system", "developer", "user")
FORMATS = ("text", "json_object", "json_schema")


def validate(x: Exchange) -> None:
    _validate_input(x)
    instructions = x.body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _wrong_type("instructions", "a string", instructions)
    int_field(x, "max_output_tokens", MIN_OUTPUT_TOKENS, MIN_OUTPUT_TOKENS)
    choice_field(x, "service_tier", "auto", SERVICE_TIERS)
    check_effort(x, "reasoning.effort", _effort(x.body))
    _validate_format(x)
    tokens = estimate_messages_tokens(response_messages(x.body))
    if tokens > CONTEXT_TOKENS:
        raise invalid("Your input exceeds the context window of this model. Please adjust your input and try again.",
                      "input", "context_length_exceeded")


def _validate_input(x: Exchange) -> None:
    value = require(x, "input")
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _wrong_type("input", "one of a string or array of input items", value)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _wrong_type(f"input[{index}]", "an object", item)
        if "role" in item:
            check_choice(item["role"], f"input[{index}].role", ROLES)
            if not isinstance(item.get("content"), str | list):
                raise _wrong_type(f"input[{index}].content", "one of a string or array of input content",
                                  item.get("content"))


def _validate_format(x: Exchange) -> None:
    text = x.body.get("text")
    if text is not None and not isinstance(text, dict):
        raise _wrong_type("text", "an object", text)
    fmt = text_format_of(x.body)
    kind = fmt.get("type")
    check_choice(kind, "text.format.type", FORMATS)
    if kind == "json_schema":
        for name in ("name", "schema"):
            if not fmt.get(name):
                raise invalid(f"Missing required parameter: 'text.format.{name}'.", f"text.format.{name}",
                              "missing_required_parameter")
    if kind == "json_object" and not any("json" in t.lower() for t in texts(x)):
        raise invalid("Response input messages must contain the word 'json' in some form to use 'text.format' "
                      "of type 'json_object'.", "input")


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number"}


def _wrong_type(param: str, expected: str, value: Any) -> Rejection:
    got = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
    return invalid(f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param,
                   "invalid_type")


def _effort(body: dict[str, Any]) -> Any:
    reasoning = body.get("reasoning")
    return reasoning.get("effort") if isinstance(reasoning, dict) else None


def texts(x: Exchange) -> list[str]:
    return message_texts(response_messages(x.body))


def answer(x: Exchange, messages: list[dict[str, Any]], fault: str | None) -> Answer:
    """The chat answer of the same conversation, in the text format asked, within max_output_tokens."""
    key = conversation_key(messages)
    thought = reasoning_tokens(x.deployment, _effort(x.body), seed_of("reasoning", key, "0"))
    budget = x.body.get("max_output_tokens")
    ask = Ask(answer_seed(key), text_format_of(x.body), budget, thought, message_texts(messages), fault)
    return generate(ask, x.config.output_filter_word)


async def respond(x: Exchange) -> web.StreamResponse:
    fault = answer_fault(x)
    messages = response_messages(x.body)
    reply_answer = answer(x, messages, fault)
    cached = cached_prompt_tokens(x, messages, x.body.get("tools"))
    usage = responses_usage(estimate_messages_tokens(messages), cached, reply_answer)
    reply = Reply(reply_answer, x.body, x.model, served_tier(x) or "default",
                  spoil_usage(usage, fault, "input_tokens"), is_reasoning_model(x.deployment))
    if x.body.get("stream"):
        return await stream_response(x, reply, fault)
    await pace_tokens(x, reply_answer.tokens)
    return json_answer(response_object(reply, done=True))


RESPONSES = Operation(
    path="responses",
    azure_name="Responses_Create",
    respond=respond,
    validate=validate,
    texts=texts,
    charge=responses_charge,
    filter_style="prompt",
    tiers=True,
    classic=False,
    azure_since="2025-03-01-preview",
)
