"""Deterministic transcripts of uploaded audio, in Whisper's output formats."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.emulator.audio import audio_duration_s
from pipeline.emulator.prose import seed_of, words_for

WORDS_PER_SECOND = 2.5
MAX_WORDS = 5000
_WORDS_PER_SEGMENT = 12
_LANGUAGES = {
    "en": "english",
    "fr": "french",
    "de": "german",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "ja": "japanese",
    "zh": "chinese",
}


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """Text plus word timings; segments are runs of consecutive words."""

    task: str  # "transcribe" or "translate"
    language: str
    duration: float
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    def segments(self) -> list[tuple[float, float, str]]:
        runs = [self.words[i : i + _WORDS_PER_SEGMENT] for i in range(0, len(self.words), _WORDS_PER_SEGMENT)]
        return [(run[0].start, run[-1].end, " ".join(w.word for w in run)) for run in runs]


def transcript_for(audio: bytes, task: str = "transcribe", language: str | None = None) -> Transcript:
    """The transcript of `audio`: words from its hash, timings spread over its duration."""
    duration = round(audio_duration_s(audio), 2)
    count = min(MAX_WORDS, max(1, round(duration * WORDS_PER_SECOND)))
    words = words_for(seed_of(task, audio), count)
    # Each word gets time in proportion to its length, so timings rise monotonically.
    weights = [len(w) + 1 for w in words]
    scale = duration / sum(weights)
    timed, clock = [], 0.0
    for word, weight in zip(words, weights, strict=True):
        start, clock = clock, clock + weight * scale
        timed.append(Word(word.strip("."), round(start, 3), round(min(clock, duration), 3)))
    name = "english" if task == "translate" else _LANGUAGES.get(language or "en", language or "")
    return Transcript(task, name, duration, tuple(timed))


def verbose_json(transcript: Transcript, granularities: set[str]) -> dict[str, Any]:
    """Whisper's verbose_json; `words` only with word granularity, as the service does."""
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            _segment(index, start, end, text) for index, (start, end, text) in enumerate(transcript.segments())
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return body


def _segment(index: int, start: float, end: float, text: str) -> dict[str, Any]:
    return {
        "id": index,
        "seek": int(start * 100) // 3000 * 3000,  # Whisper seeks in 30 s windows of 10 ms frames
        "start": start,
        "end": end,
        "text": " " + text,
        "tokens": [50364 + (seed_of(text, str(i)) % 1000) for i in range(len(text.split()))],
        "temperature": 0.0,
        "avg_logprob": -0.25,
        "compression_ratio": 1.2,
        "no_speech_prob": 0.01,
    }


def srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(transcript.segments(), start=1)
    ]
    return "\n".join(blocks) + "\n"


def vtt(transcript: Transcript) -> str:
    blocks = [f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{text}\n" for start, end, text in transcript.segments()]
    return "WEBVTT\n\n" + "\n".join(blocks) + "\n"


def _stamp(seconds: float, mark: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{mark}{rest % 1000:03d}"


def usage_seconds(transcript: Transcript) -> int:
    return max(1, math.ceil(transcript.duration))
