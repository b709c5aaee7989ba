"""Deterministic transcripts of what was heard in an upload, in the services' output formats.

One segment per speech region (a region longer than 30 s is cut in pieces, as Whisper decodes 30 s
windows). A region's words come from its pitch and length alone (`words_for_pitch`) and are timed evenly
inside it, so two uploads that hold the same sentence (two overlapping chunks of one recording) read it
the same, and a test can compute what the client should receive from a recording's script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.audio.samples import PITCH_STEP_HZ
from pipeline.emulator.hearing import Heard, Region, hear
from pipeline.emulator.prose import seed_of, words_for

WORDS_PER_SECOND = 2.5
MAX_SEGMENT_S = 30.0
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
class Segment:
    start: float
    end: float
    words: tuple[Word, ...]
    speaker: int  # the pitch band of the region it was heard in: who speaks (see diarization.py)

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


@dataclass(frozen=True)
class Transcript:
    task: str  # "transcribe" or "translate"
    language: str
    duration: float
    segments: tuple[Segment, ...]

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for segment in self.segments for word in segment.words)

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments)


def words_for_pitch(pitch_hz: float, duration_s: float) -> list[str]:
    """The words said in a region of this pitch and length: about WORDS_PER_SECOND, at least one.

    They are a prefix of one sequence per pitch, so a sentence cut short by a chunk boundary reads as
    the start of the whole one."""
    pitch = round(pitch_hz / PITCH_STEP_HZ) * PITCH_STEP_HZ
    count = max(1, round(duration_s * WORDS_PER_SECOND))
    return words_for(seed_of("pitch", f"{pitch:.0f}"), count)


def transcript_for(audio: bytes, task: str = "transcribe", language: str | None = None) -> Transcript:
    """The transcript of an upload (decodes it: raises pipeline.audio.errors.AudioDecodeError if it is not audio)."""
    return transcript_of(hear(audio), task, language)


def transcript_of(heard: Heard, task: str = "transcribe", language: str | None = None) -> Transcript:
    segments = tuple(piece for region in heard.regions for piece in _segments_of(region))
    name = "english" if task == "translate" else _LANGUAGES.get(language or "en", language or "")
    return Transcript(task, name, round(heard.duration, 3), segments)


def _segments_of(region: Region) -> list[Segment]:
    """The region's words, timed evenly across it, in pieces of at most MAX_SEGMENT_S."""
    texts = words_for_pitch(region.pitch, region.duration)
    step = region.duration / len(texts)
    words = [Word(text, round(region.start + i * step, 3), round(region.start + (i + 1) * step, 3))
             for i, text in enumerate(texts)]
    words[-1] = Word(words[-1].word, words[-1].start, region.end)  # no rounding drift past the region
    pieces = math.ceil(region.duration / MAX_SEGMENT_S - 1e-9) or 1
    runs = [words[len(words) * k // pieces : len(words) * (k + 1) // pieces] for k in range(pieces)]
    return [Segment(run[0].start, run[-1].end, tuple(run), region.speaker) for run in runs if run]


def verbose_json(transcript: Transcript, granularities: set[str]) -> dict[str, Any]:
    """Whisper's verbose_json; `words` only with word granularity, as the service does."""
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [_segment(index, segment) for index, segment in enumerate(transcript.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return body


def _segment(index: int, segment: Segment) -> dict[str, Any]:
    return {
        "id": index,
        "seek": int(segment.start * 100) // 3000 * 3000,  # Whisper seeks in 30 s windows of 10 ms frames
        "start": segment.start,
        "end": segment.end,
        "text": " " + segment.text,
        "tokens": [50364 + (seed_of(segment.text, str(i)) % 1000) for i in range(len(segment.words))],
        "temperature": 0.0,
        "avg_logprob": -0.25,
        "compression_ratio": 1.2,
        "no_speech_prob": 0.01,
    }


def srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks) + "\n"


def vtt(transcript: Transcript) -> str:
    blocks = [f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text}\n" for s in transcript.segments]
    return "WEBVTT\n\n" + "\n".join(blocks) + "\n"


def _stamp(seconds: float, mark: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{mark}{rest % 1000:03d}"


def usage_seconds(transcript: Transcript) -> int:
    return max(1, math.ceil(transcript.duration))


def usage_tokens(transcript: Transcript) -> dict[str, Any]:
    """What gpt-4o transcription models bill: audio tokens in (about 10 a second), text tokens out."""
    audio = max(1, round(transcript.duration * 10))
    out = len(transcript.words)
    return {"type": "tokens", "input_tokens": audio, "output_tokens": out, "total_tokens": audio + out,
            "input_token_details": {"audio_tokens": audio, "text_tokens": 0}}
