"""Recordings with known speech offsets, for tests, benchmarks and the demo.

A "sentence" is a tone burst: its pitch names it (the emulator transcribes a speech region into words
derived from its dominant pitch, so the same sentence heard in two chunks reads the same), its pitch band
names its speaker (SPEAKER_BAND_HZ wide), and the pauses between sentences are quiet noise, not digital
silence, as in a real room. Rendering and writing stream in blocks: an hour-long file is never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream

RATE = 16_000
SPEAKER_BAND_HZ = 1000.0  # speaker k speaks at pitches in [k * band + 150, (k + 1) * band - 150)
PITCH_STEP_HZ = 50.0  # sentences of one speaker differ in pitch by at least this much
_BLOCK = RATE * 10  # samples rendered and encoded at a time

# Container format and codec per file extension (what PyAV calls them).
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
    "mp4": ("mp4", "aac"),
    "ogg": ("ogg", "libopus"),
    "oga": ("ogg", "libopus"),
    "webm": ("webm", "libopus"),
}


@dataclass(frozen=True)
class Sentence:
    start: float  # seconds from the start of the recording
    end: float
    pitch: float  # Hz
    speaker: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Script:
    """The truth about a recording: where each sentence is, and how long the whole is."""

    sentences: tuple[Sentence, ...]
    duration: float

    def to_json(self) -> str:
        return json.dumps({"duration": self.duration, "sentences": [asdict(s) for s in self.sentences]})

    @staticmethod
    def from_json(text: str) -> Script:
        data = json.loads(text)
        return Script(tuple(Sentence(**s) for s in data["sentences"]), float(data["duration"]))


def pitch_for(index: int, speaker: int = 0) -> float:
    """The pitch of a speaker's index-th distinct sentence (they cycle after 16)."""
    return speaker * SPEAKER_BAND_HZ + 200.0 + PITCH_STEP_HZ * (index % 16)


def script(duration_s: float, *, speakers: int = 1, seed: int = 0, sentence_s: tuple[float, float] = (2.0, 9.0),
           pause_s: tuple[float, float] = (0.5, 2.0), lead_s: float = 0.7) -> Script:
    """Sentences and pauses of random lengths (deterministic from `seed`) filling `duration_s`; speakers take
    turns at random. Consecutive sentences always differ in pitch."""
    rng = np.random.default_rng(seed)
    sentences: list[Sentence] = []
    clock, index = lead_s, 0
    while True:
        length = float(rng.uniform(*sentence_s))
        if clock + length > duration_s - 0.3:
            break
        speaker = int(rng.integers(speakers)) if speakers > 1 else 0
        sentences.append(Sentence(round(clock, 3), round(clock + length, 3), pitch_for(index, speaker), speaker))
        clock += length + float(rng.uniform(*pause_s))
        index += 1
    return Script(tuple(sentences), float(duration_s))


def render(plan: Script, rate: int = RATE, noise_db: float = -60.0) -> Iterator[np.ndarray]:
    """int16 mono samples of the recording, in blocks."""
    total = round(plan.duration * rate)
    rng = np.random.default_rng(1)
    noise = 10 ** (noise_db / 20)
    ordered = sorted(plan.sentences, key=lambda s: s.start)
    for first in range(0, total, _BLOCK):
        count = min(_BLOCK, total - first)
        t = (first + np.arange(count)) / rate
        block = noise * rng.standard_normal(count)
        for sentence in ordered:
            if sentence.end < t[0] or sentence.start > t[-1]:
                continue
            inside = (t >= sentence.start) & (t < sentence.end)
            local = t[inside] - sentence.start
            syllables = 0.65 + 0.35 * np.sin(2 * np.pi * 4.0 * local) ** 2  # never quiet inside a sentence
            block[inside] += 0.3 * syllables * np.sin(2 * np.pi * sentence.pitch * t[inside])
        yield (np.clip(block, -1, 1) * 32767).astype(np.int16)


def write(path: str | Path, plan: Script, *, rate: int = RATE, channels: int = 1, bit_rate: int | None = None) -> Path:
    """Encode the recording to `path`, its format from the extension (FORMATS). Stereo copies the channel."""
    path = Path(path)
    container_format, codec = FORMATS[path.suffix.lower().lstrip(".")]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=48_000 if codec == "libopus" else rate, layout=layout)
        assert isinstance(stream, AudioStream)  # FORMATS names audio codecs only
        if bit_rate:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=stream.rate)
        pts = 0
        for block in render(plan, rate):
            frame = _frame(block, rate, channels)
            frame.pts = pts
            pts += block.shape[0]
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for converted in resampler.resample(None):
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _frame(block: np.ndarray, rate: int, channels: int) -> av.AudioFrame:
    if channels == 2:
        interleaved = np.repeat(block, 2)[None, :]
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    else:
        frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


def write_with_manifest(path: str | Path, plan: Script, **options: int | None) -> Path:
    """The recording and, beside it, `<name>.truth.json` holding its script."""
    written = write(path, plan, **options)  # type: ignore[arg-type]
    written.with_name(written.name + ".truth.json").write_text(plan.to_json())
    return written
