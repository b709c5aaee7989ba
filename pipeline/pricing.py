"""Estimated cost of a run from the spec's [pricing] table, or default list prices for common models.

Defaults are public list prices in USD (standard/global deployments, late 2025) and are only
estimates: Azure prices vary by region, deployment type and agreement. Set [pricing] to be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.spec import JobSpec, PricingSpec

# model name prefix -> (input per 1M tokens, output per 1M tokens, per image, per audio minute)
DEFAULT_PRICES: dict[str, tuple[float, float, float, float]] = {
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


@dataclass(frozen=True)
class Prices:
    input_per_1m: float
    output_per_1m: float
    per_image: float
    per_audio_minute: float
    estimated: bool  # True when taken from the defaults, not the spec
    source: str

    def cost(self, tokens_in: int, tokens_out: int, images: int = 0, audio_seconds: float = 0.0) -> float:
        return (tokens_in / 1e6 * self.input_per_1m + tokens_out / 1e6 * self.output_per_1m
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
    return Prices(values[0], values[1], values[2], values[3], estimated=estimated, source=source)


def _any_given(pricing: PricingSpec) -> bool:
    return any(v is not None for v in (pricing.input_per_1m, pricing.output_per_1m, pricing.per_image,
                                       pricing.per_audio_minute))


def _default_for(model: str) -> tuple[float, float, float, float] | None:
    name = model.lower()
    for prefix in sorted(DEFAULT_PRICES, key=len, reverse=True):
        if name.startswith(prefix):
            return DEFAULT_PRICES[prefix]
    return None
