"""The speech-to-text models the emulator answers as, and what each accepts: formats, length, options.

The model is the Azure deployment's name (or OpenAI's `model` field), read the way people name them:
"...diarize..." is gpt-4o-transcribe-diarize, "gpt-4o...transcribe" gpt-4o(-mini)-transcribe, anything
else whisper. The refusals are the service's own messages where they are known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.emulator.exchange import Rejection, invalid

WHISPER_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
ALL_FORMATS = (*WHISPER_FORMATS, "diarized_json")
UNDECODABLE = "Audio file might be corrupted or unsupported"
DIARIZE_CHUNKING_FROM_S = 30.0  # longer audio needs chunking_strategy with the diarize model


@dataclass(frozen=True)
class Transcriber:
    name: str  # as the service's messages quote it
    formats: tuple[str, ...]
    max_seconds: float | None  # None: only the 25 MB upload limit bounds the audio
    timestamps: bool = False  # takes timestamp_granularities[] (with verbose_json)
    translates: bool = False  # answers audio/translations
    diarizes: bool = False  # speaker labels; refuses `prompt`; chunking_strategy past 30 s
    billed_in_tokens: bool = False  # usage in tokens, not seconds


WHISPER = Transcriber("whisper-1", WHISPER_FORMATS, None, timestamps=True, translates=True)
GPT_4O = Transcriber("gpt-4o-transcribe", ("json", "text"), 1500.0, billed_in_tokens=True)
GPT_4O_MINI = Transcriber("gpt-4o-mini-transcribe", ("json", "text"), 1500.0, billed_in_tokens=True)
DIARIZE = Transcriber("gpt-4o-transcribe-diarize", ("json", "text", "diarized_json"), 1400.0, diarizes=True)


def transcriber_for(model: str) -> Transcriber:
    """The model a deployment (or model) name stands for."""
    name = model.lower()
    if "diarize" in name:
        return DIARIZE
    if "gpt-4o" in name and "transcribe" in name:
        return GPT_4O_MINI if "mini" in name else GPT_4O
    return WHISPER


def check_options(model: Transcriber, fields: dict[str, object], task: str) -> None:
    """Refuse what this model does not take, before the audio is decoded (fields as uploads.read_form gives)."""
    if task == "translate" and not model.translates:
        raise invalid(f"model '{model.name}' does not support translations. Use 'whisper-1' instead.", "model",
                      "unsupported_value")
    fmt = fields.get("response_format") or "json"
    if fmt not in model.formats:
        raise invalid(f"response_format '{fmt}' is not compatible with model '{model.name}'. "
                      "Use 'json' or 'text' instead.", "response_format", "unsupported_value")
    if fields.get("timestamp_granularities") and not model.timestamps:
        raise invalid(f"timestamp_granularities[] is not compatible with model '{model.name}'.",
                      "timestamp_granularities", "unsupported_value")
    if model.diarizes and fields.get("prompt"):
        raise invalid(f"prompt is not supported for {model.name}", "prompt", "unsupported_value")
    _check_chunking_strategy(fields.get("chunking_strategy"))


def _check_chunking_strategy(value: object) -> None:
    """"auto", or a server_vad object sent as JSON text."""
    if value is None or value == "auto":
        return
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("type") != "server_vad":
        raise invalid(f"Invalid value for 'chunking_strategy': {value!r}. Expected 'auto' or an object of type "
                      "'server_vad'.", "chunking_strategy", "invalid_value")


def length_refusal(model: Transcriber, duration_s: float, fields: dict[str, object],
                   max_override_s: float) -> Rejection | None:
    """The 400 for audio too long for the model (`max_override_s` > 0 stands in for every model's limit), or
    too long for the diarize model to take without chunking_strategy; None when the length is fine."""
    limit = max_override_s if max_override_s > 0 else model.max_seconds
    if limit is not None and duration_s > limit:
        return invalid(f"audio duration {duration_s:.6f} seconds is longer than {limit:g} seconds "
                       "which is the maximum for this model", None, "invalid_value")
    if model.diarizes and duration_s > DIARIZE_CHUNKING_FROM_S and not has_chunking_strategy(fields):
        return invalid("chunking_strategy is required for audio longer than 30 seconds", "chunking_strategy",
                       "invalid_value")
    return None


def has_chunking_strategy(fields: dict[str, object]) -> bool:
    """Sent as "auto", as a JSON object, or (the openai SDK's way with an object) as chunking_strategy[key] parts."""
    return bool(fields.get("chunking_strategy")) or any(name.startswith("chunking_strategy[") for name in fields)


def undecodable() -> Rejection:
    return invalid(UNDECODABLE, "file", "invalid_value")
