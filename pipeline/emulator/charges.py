"""Tokens a request is charged at arrival, as Azure estimates them.

Azure charges prompt tokens (estimated partly from character count) plus
max_tokens at arrival, before any answer exists (the Responses API: input plus
max_output_tokens). The emulator does the same with `pipeline.tokens`, so a
client that paces with these functions and the emulator count alike. Requests
without max_tokens are charged the defaults in `config.DEFAULT_MAX_TOKENS`;
images and audio are charged no tokens (their quotas are requests per minute).
"""

from __future__ import annotations

from typing import Any

from pipeline.emulator.config import DEFAULT_MAX_TOKENS
from pipeline.emulator.inputs import response_messages
from pipeline.tokens import estimate_messages_tokens, estimate_text_tokens

# The fields that cap an answer's tokens, per operation (chat and completions: the first of these set).
_BUDGET_FIELDS: dict[str, tuple[str, ...]] = {"responses": ("max_output_tokens",)}
_CHAT_BUDGET_FIELDS = ("max_completion_tokens", "max_tokens")


def input_items(value: Any) -> list[Any]:
    """Embedding or completion input as a list of items (strings or token-id lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]  # one token array
    return list(value) if isinstance(value, list) else []


def item_tokens(item: Any) -> int:
    """Tokens of one input item: the estimate for text, the length of a token array."""
    if isinstance(item, list):
        return len(item)
    return estimate_text_tokens(str(item))


def answer_budget(op: str, body: dict[str, Any]) -> int:
    """The most tokens one answer may take: max_completion_tokens, max_tokens (Responses: max_output_tokens),
    or the default."""
    for name in _BUDGET_FIELDS.get(op, _CHAT_BUDGET_FIELDS):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return DEFAULT_MAX_TOKENS.get(op, 0)


def _choices(body: dict[str, Any]) -> int:
    n = body.get("n", 1)
    return n if isinstance(n, int) and n > 0 else 1


def embeddings_charge(body: dict[str, Any]) -> int:
    return sum(item_tokens(item) for item in input_items(body.get("input")))


def chat_charge(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    prompt = estimate_messages_tokens(messages) if isinstance(messages, list) else 0
    return prompt + answer_budget("chat/completions", body) * _choices(body)


def completions_charge(body: dict[str, Any]) -> int:
    prompts = input_items(body.get("prompt"))
    prompt = sum(item_tokens(item) for item in prompts)
    return prompt + answer_budget("completions", body) * _choices(body) * max(1, len(prompts))


def responses_charge(body: dict[str, Any]) -> int:
    """As chat: the input (instructions included) plus max_output_tokens, or the chat default."""
    return estimate_messages_tokens(response_messages(body)) + answer_budget("responses", body)


_CHARGES = {
    "embeddings": embeddings_charge,
    "chat/completions": chat_charge,
    "completions": completions_charge,
    "responses": responses_charge,
}


def charge_tokens(op: str, body: dict[str, Any]) -> int:
    """Tokens charged against TPM for a request to `op` ("chat/completions", ...)."""
    charge = _CHARGES.get(op)
    return charge(body) if charge else 0
