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
DEFAULT_MAX_TOKENS: dict[str, int] = {"chat/completions": 1024, "completions": 16, "responses": 1024}

MAX_AUDIO_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Knob:
    """How a config field is set from outside: as an option of `pipeline emulator` (`--field-name`), and,
    where the job spec's EmulatorOptions names the field, as a key of its [service.emulator] table.

    The bounds are the job spec's: the command and `configure(...)` take any value, as tests push past them.
    """

    help: str | None = None
    show_default: bool = False
    flag: str | None = None  # the option, where it is not --field-name
    choices: tuple[str | None, ...] = ()  # a text field that takes one of these (None: unset); others are refused
    minimum: float | None = None  # the spec refuses less ("must be >= minimum")
    probability: bool = False  # a share of requests: the spec takes 0 to 1


def knob(default: Any, help: str | None = None, **how: Any) -> Any:
    """A field with its Knob: one declaration gives the config, the command's option and the spec's key."""
    return dataclasses.field(default=default, metadata={_KNOB: Knob(help, **how)})


_KNOB = "knob"


@dataclass
class EmulatorConfig:
    """Every knob of the emulator. Quotas are per deployment (or model)."""

    rpm: int | None = knob(None, "Requests per minute per deployment.", minimum=1)
    tpm: int | None = knob(None, "Tokens per minute per deployment.", minimum=1)
    # Azure evaluates quota over 1 s or 10 s windows: a window holds rpm*window_s/60 requests.
    window_s: float = knob(1.0, "Quota window (Azure: 1 or 10).", show_default=True, minimum=0.01)
    latency_ms: float = knob(0.0, minimum=0)
    # Pause per generated token: paces streamed chunks and lengthens plain answers alike.
    latency_per_token_ms: float = knob(0.0)
    error_rate: float = knob(0.0, "Share of random 500/503 answers.", probability=True)
    drop_rate: float = knob(0.0, "Share of connections closed unanswered.", probability=True)
    hang_rate: float = knob(0.0, "Share of answers delayed by --hang-s.", probability=True)
    hang_s: float = knob(30.0)
    truncate_rate: float = knob(0.0, "Share of bodies cut in half.", probability=True)
    burst429_rate: float = knob(0.0, "Share of spurious 429s.", probability=True)
    # Compute-bound (a self-hosted server): one request at a time, this long per embeddings input
    # (chat: per token it may generate), computed even after its client went away (compute.py). 0: off.
    compute_ms_per_input: float = knob(0.0, "Compute-bound: one request at a time, this long per embeddings input.")
    seed: int = knob(0)
    api_key: str | None = knob(None, "Require this key (any non-empty key if unset).")
    token_verifier: Callable[[str], bool] | None = None
    # (knob() is dataclasses.field with metadata, and the default None: nothing mutable is shared)
    deployments: set[str] | None = knob(None, "Known deployment (repeatable; any if unset).",  # noqa: RUF009
                                        flag="--deployment")
    content_filter_word: str = knob("BLOCKME", show_default=True)
    # Prompts containing this get a 200 whose answer was cut by the output filter.
    output_filter_word: str = "FILTEROUT"
    # If set, generated PNGs are this many pixels square whatever size was asked (cheap tests).
    image_size_px: int | None = None
    max_audio_bytes: int = MAX_AUDIO_BYTES
    # Longer decoded audio is refused as the service refuses it; 0 keeps each model's own limit (gpt-4o(-mini)-
    # transcribe 1500 s, diarize 1400 s, whisper none), so tests with short recordings can reach the refusal.
    max_audio_seconds: float = knob(0.0, "Refuse audio longer than this many seconds, for every model (0: each "
                                    "model's own limit).", minimum=0)
    region: str = "Sweden Central"
    # Marker faults of kind 429 advertise this wait in retry-after-ms.
    fault_retry_after_ms: int = 50
    # The service's own token count: charges (and x-ratelimit-*-tokens) are this many times the
    # estimate both sides share (pipeline.tokens). Azure's estimate differs from any client's.
    token_count_factor: float = knob(1.0, "Charge this many times the shared token estimate (a service counting "
                                     "otherwise).", show_default=True)
    # "sliding" (Azure: the last window_s seconds) or "fixed" (clock-aligned windows of window_s, counted
    # from zero in each, as gateways such as LiteLLM count per clock minute).
    window_kind: str = knob("sliding", "fixed: clock-aligned windows of --window-s, counted from zero in each "
                            "(a gateway's minute).", show_default=True, choices=("sliding", "fixed"))
    # "litellm": answer as a LiteLLM proxy in front: its own 429 (`llm_provider-retry-after`, seconds to the
    # window's end, and no retry-after) and `x-litellm-call-id` instead of x-request-id / apim-request-id.
    gateway: str | None = knob(None, "Refuse as this gateway does (its own 429 and request id headers).",
                               choices=(None, "litellm"))
    # "429" refuses an over-limit request; "hold" keeps it until its window has room and then answers it
    # (LiteLLM's default), so its answer comes late instead.
    # Flex processing (service_tier "flex", chat and responses): answered this much later than the same request
    # at the default tier, and at flex_unavailable_rate refused with flex's 429 "resource unavailable" (no
    # quota charged, no x-ratelimit headers: it says nothing of the quota).
    flex_latency_ms: float = knob(0.0, "Extra latency of a flex request (service_tier flex).", minimum=0)
    flex_unavailable_rate: float = knob(0.0, "Share of flex requests refused with 429 resource_unavailable.",
                                        probability=True)
    over_limit: str = knob("429", "hold: keep an over-limit request until its window has room, then answer it.",
                           show_default=True, choices=("429", "hold"))


def knobs() -> dict[str, dataclasses.Field[Any]]:
    """The fields set from outside (the command's options, the spec's keys), by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(EmulatorConfig) if _KNOB in f.metadata}


def knob_of(config_field: dataclasses.Field[Any]) -> Knob:
    knob_ = config_field.metadata[_KNOB]
    assert isinstance(knob_, Knob)
    return knob_


def value_type(config_field: dataclasses.Field[Any]) -> type | None:
    """The type a field's values have (set, int, float or str), read from its annotation, which is a string
    here (None is allowed where it says `| None`); None for a type no outside value can take (a callable)."""
    text = str(config_field.type)
    return next((kind for kind in (set, int, float, str) if text.startswith(kind.__name__)), None)


# Text fields that take one of a few values; anything else is refused when set.
CHOICES: dict[str, frozenset[str | None]] = {
    name: frozenset(knob_of(f).choices) for name, f in knobs().items() if knob_of(f).choices}


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
        coerced[name] = _coerce(fields[name], value)
        if name in CHOICES and coerced[name] not in CHOICES[name]:
            raise ValueError(f"{name}: {value!r} is not one of {sorted(map(str, CHOICES[name]))}")
    for name, value in coerced.items():
        setattr(config, name, value)


def _coerce(config_field: dataclasses.Field[Any], value: Any) -> Any:
    """Turn a JSON value into the field's type."""
    name, text, kind = config_field.name, str(config_field.type), value_type(config_field)
    if value is None:
        if "None" not in text:
            raise ValueError(f"{name} may not be null")
        return None
    try:
        if kind is set:
            return {str(item) for item in value}
        if kind is int:
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
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
