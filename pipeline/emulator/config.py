"""What the emulator does: quotas, latency, faults, auth, content rules.

One mutable `EmulatorConfig` per server. Tests change it at runtime through
`POST /_emulator/config` or `EmulatorThread.configure(...)`; every request
reads the current values, so a change applies to the next request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What a request without max_tokens is charged for its answer at arrival.
# Azure does not document its assumption; these are the emulator's, and the
# client's estimate should use the same numbers (see charges.charge_tokens).
DEFAULT_MAX_TOKENS: dict[str, int] = {"chat/completions": 1024, "completions": 16}

MAX_AUDIO_BYTES = 25 * 1024 * 1024


@dataclass
class EmulatorConfig:
    """Every knob of the emulator. Quotas are per deployment (or model)."""

    rpm: int | None = None
    tpm: int | None = None
    # Azure evaluates quota over 1 s or 10 s windows: a window holds rpm*window_s/60 requests.
    window_s: float = 1.0
    latency_ms: float = 0.0
    # Pause per generated token: paces streamed chunks and lengthens plain answers alike.
    latency_per_token_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 30.0
    truncate_rate: float = 0.0
    burst429_rate: float = 0.0
    seed: int = 0
    api_key: str | None = None
    token_verifier: Callable[[str], bool] | None = None
    deployments: set[str] | None = None
    content_filter_word: str = "BLOCKME"
    # Prompts containing this get a 200 whose answer was cut by the output filter.
    output_filter_word: str = "FILTEROUT"
    # If set, generated PNGs are this many pixels square whatever size was asked (cheap tests).
    image_size_px: int | None = None
    max_audio_bytes: int = MAX_AUDIO_BYTES
    region: str = "Sweden Central"
    # Marker faults of kind 429 advertise this wait in retry-after-ms.
    fault_retry_after_ms: int = 50
    # The service's own token count: charges (and x-ratelimit-*-tokens) are this many times the
    # estimate both sides share (pipeline.tokens). Azure's estimate differs from any client's.
    token_count_factor: float = 1.0
    # "sliding" (Azure: the last window_s seconds) or "fixed" (clock-aligned windows of window_s, counted
    # from zero in each, as gateways such as LiteLLM count per clock minute).
    window_kind: str = "sliding"
    # "litellm": answer as a LiteLLM proxy in front: its own 429 (`llm_provider-retry-after`, seconds to the
    # window's end, and no retry-after) and `x-litellm-call-id` instead of x-request-id / apim-request-id.
    gateway: str | None = None
    # "429" refuses an over-limit request; "hold" keeps it until its window has room and then answers it
    # (LiteLLM's default), so its answer comes late instead.
    over_limit: str = "429"
    # Compute-bound (a self-hosted server): one request at a time, this long per embeddings input
    # (chat: per token it may generate), computed even after its client went away (compute.py). 0: off.
    compute_ms_per_input: float = 0.0


# Text fields that take one of a few values; anything else is refused when set.
CHOICES: dict[str, frozenset[str | None]] = {
    "window_kind": frozenset({"sliding", "fixed"}),
    "gateway": frozenset({None, "litellm"}),
    "over_limit": frozenset({"429", "hold"}),
}


# Fields a JSON body may not set: callables cannot travel over HTTP.
_NOT_SETTABLE = frozenset({"token_verifier"})


def settable_fields() -> dict[str, dataclasses.Field[Any]]:
    """The config fields that `apply_updates` accepts, by name."""
    return {f.name: f for f in dataclasses.fields(EmulatorConfig) if f.name not in _NOT_SETTABLE}


def apply_updates(config: EmulatorConfig, updates: dict[str, Any]) -> None:
    """Validate every update first, then apply them all (all or nothing)."""
    fields = settable_fields()
    coerced: dict[str, Any] = {}
    for name, value in updates.items():
        if name not in fields:
            raise ValueError(f"unknown emulator config field: {name!r}")
        coerced[name] = _coerce(name, fields[name].type, value)
        if name in CHOICES and coerced[name] not in CHOICES[name]:
            raise ValueError(f"{name}: {value!r} is not one of {sorted(map(str, CHOICES[name]))}")
    for name, value in coerced.items():
        setattr(config, name, value)


def _coerce(name: str, type_text: Any, value: Any) -> Any:
    """Turn a JSON value into the field's type; the annotation is a string here."""
    text = str(type_text)
    if value is None:
        if "None" not in text:
            raise ValueError(f"{name} may not be null")
        return None
    try:
        if text.startswith("set"):
            return {str(item) for item in value}
        if text.startswith("int"):
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError
            return int(value)
        if text.startswith("float"):
            return float(value)
        if text.startswith("str"):
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: cannot use {value!r} for a {text}") from None
    raise ValueError(f"{name}: unsupported field type {text}")


def public_view(config: EmulatorConfig) -> dict[str, Any]:
    """The config as JSON, with the key masked: stats and logs may be shared."""
    view: dict[str, Any] = {}
    for name in settable_fields():
        value = getattr(config, name)
        if name == "api_key" and value is not None:
            value = "***"
        elif isinstance(value, set):
            value = sorted(value)
        view[name] = value
    view["token_verifier"] = config.token_verifier is not None
    return view
