"""Helpers shared by the operations: JSON answers, ids, pacing, field checks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from pipeline.emulator.caching import prompt_text
from pipeline.emulator.exchange import Exchange, invalid
from pipeline.emulator.reasoning import EFFORTS, is_reasoning_model
from pipeline.tokens import estimate_messages_tokens

# The tiers a request may ask for; "auto" is served (and reported) as "default".
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")


def json_answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


def new_id(prefix: str) -> str:
    """An id in the service's style, e.g. chatcmpl-<29 chars>."""
    return prefix + uuid.uuid4().hex[:29]


def created() -> int:
    return int(time.time())


def fingerprint(x: Exchange) -> str:
    return "fp_" + uuid.uuid5(uuid.NAMESPACE_DNS, x.deployment or "model").hex[:10]


async def pace_tokens(x: Exchange, tokens: int) -> None:
    """Generation time: latency_per_token_ms for each token produced."""
    delay = x.config.latency_per_token_ms * tokens / 1000
    if delay > 0:
        await asyncio.sleep(delay)


def require(x: Exchange, name: str) -> Any:
    """The body field `name`, or the service's 400 for a missing required parameter."""
    if name not in x.body or x.body[name] is None:
        raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    return x.body[name]


def int_field(x: Exchange, name: str, default: int, low: int, high: int | None = None) -> int:
    """An integer field within [low, high], with the service's messages when it is not."""
    value = x.body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(
            f"Invalid type for '{name}': expected an integer, but got {type(value).__name__} instead.",
            name,
            "invalid_type",
        )
    if value < low:
        raise invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise invalid(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def choice_field(x: Exchange, name: str, default: str, allowed: tuple[str, ...]) -> str:
    """A string field restricted to `allowed`, with the service's invalid_value message."""
    value = x.body.get(name) or default
    check_choice(value, name, allowed)
    return str(value)


def check_choice(value: Any, param: str, allowed: tuple[str, ...]) -> None:
    """Refuse a value outside `allowed` with the service's invalid_value message naming `param`."""
    if value not in allowed:
        quoted = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
        raise invalid(f"Invalid value: '{value}'. Supported values are: {quoted}.", param, "invalid_value")


def check_effort(x: Exchange, param: str, effort: Any) -> None:
    """A reasoning effort (`reasoning_effort`, `reasoning.effort`): only reasoning models take one."""
    if effort is None:
        return
    if not is_reasoning_model(x.deployment):
        raise invalid(f"Unsupported parameter: '{param}' is not supported with this model.", param,
                      "unsupported_parameter")
    check_choice(effort, param, EFFORTS)


def served_tier(x: Exchange) -> str | None:
    """The `service_tier` an answer reports: the tier used ("auto" is served as "default"); Azure's routes
    report it only when the request asked for one."""
    tier = x.body.get("service_tier")
    if tier is None and x.azure:
        return None
    return "default" if tier in (None, "auto") else str(tier)


def cached_prompt_tokens(x: Exchange, messages: list[dict[str, Any]], tools: Any = None) -> int:
    """The prompt tokens the service would have had cached (caching.py); this prompt's prefixes are
    remembered for the requests after it."""
    prompt = estimate_messages_tokens(messages)
    return x.state.prompt_cache.observe(x.deployment, prompt_text(messages, tools), prompt)


def string_limit(x: Exchange, name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise invalid(
            f"Invalid '{name}': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(text)} instead.",
            name,
            "string_above_max_length",
        )
