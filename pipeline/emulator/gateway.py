"""How a gateway in front of the service answers for itself (config.gateway): LiteLLM's own rate limit.

A LiteLLM proxy with an rpm/tpm limit on a key counts per clock minute (window_kind "fixed") and
refuses with its own 429: the wait in `llm_provider-retry-after` (whole seconds to the window's end),
no `retry-after`, and its call id in `x-litellm-call-id` where Azure would put x-request-id.
"""

from __future__ import annotations

import math

from pipeline.emulator import bodies
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.quotas import Decision

LITELLM = "litellm"


def refusal_headers(config: EmulatorConfig, seconds: float) -> dict[str, str] | None:
    """The gateway's 429 headers, or None to answer as the service does."""
    if config.gateway != LITELLM:
        return None
    return {"llm_provider-retry-after": str(max(1, math.ceil(seconds)))}


def refusal_body(decision: Decision) -> bodies.Body:
    """LiteLLM's rate-limit handler message, as its proxy wraps an HTTPException."""
    used_requests = decision.limit_requests - decision.remaining_requests
    used_tokens = decision.limit_tokens - decision.remaining_tokens
    message = (f"LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / RPM / Max Parallel Request "
               f"Limit. current rpm: {used_requests}, rpm limit: {decision.limit_requests}, current tpm: "
               f"{used_tokens}, tpm limit: {decision.limit_tokens}")
    return bodies.openai_error(message, type_="None", param="None", code="429")


def id_headers(config: EmulatorConfig, request_id: str) -> dict[str, str] | None:
    """The gateway's request id header in place of the service's, or None."""
    return {"x-litellm-call-id": request_id} if config.gateway == LITELLM else None
