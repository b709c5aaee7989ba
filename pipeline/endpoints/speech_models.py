"""What each speech-to-text model accepts: response formats, timestamps, a prompt, diarization, how long
an upload may be. Azure deployments are named by their owner, so the model is known only when the spec
names it (`[service] model`) or the deployment is named like a model; an unknown model is checked by
the service, and chunks are cut to what every current model accepts.

Facts (2026): whisper takes every format and timestamps, no duration limit beyond 25 MB; gpt-4o-transcribe
and gpt-4o-mini-transcribe take json/text, a prompt, and refuse audio over 1500 s; gpt-4o-transcribe-diarize
takes json/text/diarized_json, no prompt, needs `chunking_strategy` over 30 s and refuses audio over 1400 s
("audio duration 1830.5 seconds is longer than 1400 seconds which is the maximum for this model").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Chunks stay this far under a model's duration limit: an encoder's padding must never push one over.
DURATION_MARGIN_S = 20.0
ANY_MODEL_MAX_S = 1400.0 - DURATION_MARGIN_S  # the shortest limit of any current model, less the margin
SPEAKER_REFERENCES = 4  # known_speaker_references the diarize model takes at most


@dataclass(frozen=True)
class SpeechModel:
    name: str
    formats: tuple[str, ...]
    timestamps: bool  # timestamp_granularities (with verbose_json)
    prompt: bool
    diarize: bool
    translate: bool
    max_seconds: float | None  # None: only the byte limit

    @property
    def max_chunk_s(self) -> float:
        """The longest chunk to send this model: its limit less the margin, never over ANY_MODEL_MAX_S (a
        longer chunk holds more decoded audio in memory while it is cut, and saves few requests)."""
        if self.max_seconds is None:
            return ANY_MODEL_MAX_S
        return min(ANY_MODEL_MAX_S, self.max_seconds - DURATION_MARGIN_S)


WHISPER = SpeechModel("whisper", ("json", "text", "srt", "vtt", "verbose_json"), timestamps=True, prompt=True,
                      diarize=False, translate=True, max_seconds=None)
GPT_4O = SpeechModel("gpt-4o-transcribe", ("json", "text"), timestamps=False, prompt=True, diarize=False,
                     translate=False, max_seconds=1500.0)
GPT_4O_MINI = SpeechModel("gpt-4o-mini-transcribe", ("json", "text"), timestamps=False, prompt=True,
                          diarize=False, translate=False, max_seconds=1500.0)
DIARIZE = SpeechModel("gpt-4o-transcribe-diarize", ("json", "text", "diarized_json"), timestamps=False,
                      prompt=False, diarize=True, translate=False, max_seconds=1400.0)
MODELS = (DIARIZE, GPT_4O_MINI, GPT_4O, WHISPER)  # longest names first: the first prefix match wins

_DATED = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{3,4})$")  # a snapshot suffix: -2025-03-20, -001


def speech_model(name: str | None) -> SpeechModel | None:
    """The model a name stands for: exact, a dated snapshot of it (gpt-4o-mini-transcribe-2025-12-15), or
    whisper's variants (whisper-1, whisper); None when the name tells nothing (an Azure deployment "stt")."""
    if not name:
        return None
    base = _DATED.sub("", name.strip().lower())
    if base.startswith("whisper"):
        return WHISPER
    for model in MODELS:
        if base == model.name:
            return model
    return None


def duration_limit_in(message: str) -> float | None:
    """The maximum a refusal names ("... longer than 1400 seconds which is the maximum ..."), if any."""
    match = re.search(r"longer than (\d+(?:\.\d+)?) seconds", message) or re.search(
        r"maximum (?:audio )?duration(?: of| is)? (\d+(?:\.\d+)?) ?s", message)
    return float(match.group(1)) if match else None
