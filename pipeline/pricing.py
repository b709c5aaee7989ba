"""Estimated cost of a run from the spec's [pricing] table, or default list prices for common models.

Defaults are public list prices in USD (standard/global deployments, late 2025) and are only
estimates: Azure prices vary by region, deployment type and agreement. Set [pricing] to be exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pipeline.spec import JobSpec, PricingSpec

T = TypeVar("T")

# model name prefix -> (input per 1M tokens, output per 1M tokens, per image, per audio minute)
DEFAULT_PRICES: dict[str, tuple[float, float, float, float]] = {
    "gpt-5-mini": (0.25, 2.00, 0, 0),
    "gpt-5": (1.25, 10.00, 0, 0),
    "o4-mini": (1.10, 4.40, 0, 0),
    "o3": (2.00, 8.00, 0, 0),
    "gpt-4o-mini": (0.15, 0.60, 0, 0),
    "gpt-4o": (2.50, 10.00, 0, 0),
    "gpt-4.1-nano": (0.10, 0.40, 0, 0),
    "gpt-4.1-mini": (0.40, 1.60, 0, 0),
    "gpt-4.1": (2.00, 8.00, 0, 0),
    "gpt-35-turbo": (0.50, 1.50, 0, 0),
    "gpt-3.5-turbo": (0.50, 1.50, 0, 0),
    "text-embedding-3-small": (0.02, 0, 0, 0),
    "text-embedding-3-large": (0.13, 0, 0, 0),
    "text-embedding-ada-002": (0.10, 0, 0, 0),
    "dall-e-3": (0, 0, 0.04, 0),
    "whisper": (0, 0, 0, 0.006),
    "tts-1-hd": (30.0, 0, 0, 0),  # per 1M input characters, counted as tokens here
    "tts-1": (15.0, 0, 0, 0),
}


# Cached input tokens cost this share of the input price (Azure and OpenAI list prices, 2025-26): a tenth
# for gpt-5, a quarter for gpt-4.1, o3 and o4-mini, half for gpt-4o, o1 and o3-mini (and unknown models).
CACHED_SHARE: dict[str, float] = {"gpt-4.1": 0.25, "gpt-5": 0.1, "o3": 0.25, "o4-mini": 0.25, "o3-mini": 0.5,
                                  "o1": 0.5, "gpt-4o": 0.5}
DEFAULT_CACHED_SHARE = 0.5


@dataclass(frozen=True)
class Prices:
    input_per_1m: float
    output_per_1m: float
    per_image: float
    per_audio_minute: float
    estimated: bool  # True when taken from the defaults, not the spec
    source: str
    cached_input_per_1m: float | None = None  # None: the same as input (no cache discount known)

    def cost(self, tokens_in: int, tokens_out: int, images: int = 0, audio_seconds: float = 0.0,
             tokens_cached: int = 0) -> float:
        """`tokens_cached` is the part of `tokens_in` read from the prompt cache, at its own price."""
        cached_price = self.input_per_1m if self.cached_input_per_1m is None else self.cached_input_per_1m
        cached = min(tokens_cached, tokens_in)
        return ((tokens_in - cached) / 1e6 * self.input_per_1m + cached / 1e6 * cached_price
                + tokens_out / 1e6 * self.output_per_1m
                + images * self.per_image + audio_seconds / 60 * self.per_audio_minute)


def prices_for(spec: JobSpec) -> Prices | None:
    """The spec's prices where given, else the defaults for the model; None if neither is known."""
    given = spec.pricing
    default = _default_for(spec.service.model_name)
    if not _any_given(given) and default is None:
        return None
    base = default or (0.0, 0.0, 0.0, 0.0)
    values = [v if v is not None else b for v, b in zip(
        (given.input_per_1m, given.output_per_1m, given.per_image, given.per_audio_minute), base, strict=True)]
    estimated = not _any_given(given)
    source = "default list prices (estimate)" if estimated else "[pricing] in the spec"
    cached = given.cached_input_per_1m
    if cached is None:
        cached = values[0] * _cached_share(spec.service.model_name)
    return Prices(values[0], values[1], values[2], values[3], estimated=estimated, source=source,
                  cached_input_per_1m=cached)


def _cached_share(model: str) -> float:
    share = _by_prefix(CACHED_SHARE, model)
    return DEFAULT_CACHED_SHARE if share is None else share


def _any_given(pricing: PricingSpec) -> bool:
    return any(v is not None for v in (pricing.input_per_1m, pricing.output_per_1m, pricing.per_image,
                                       pricing.per_audio_minute, pricing.cached_input_per_1m))


def _default_for(model: str) -> tuple[float, float, float, float] | None:
    return _by_prefix(DEFAULT_PRICES, model)


def _by_prefix(table: dict[str, T], model: str) -> T | None:
    """The entry of the longest name prefix the model's name starts with (gpt-4o-mini before gpt-4o)."""
    name = model.lower()
    for prefix in sorted(table, key=len, reverse=True):
        if name.startswith(prefix):
            return table[prefix]
    return None
