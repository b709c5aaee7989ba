"""What the emulator hears in an upload: its decoded length and its speech regions, each with a pitch.

A region's dominant pitch stands for what is said in it (the test recordings of pipeline.audio.samples
speak each sentence at its own pitch), so transcripts are derived from pitch and length, never from the
bytes: the same sentence heard in two different uploads reads the same. This is CPU work (decoding,
FFTs): callers on the event loop run it in a thread.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np

from pipeline.audio.decode import pcm_blocks
from pipeline.audio.samples import PITCH_STEP_HZ, SPEAKER_BAND_HZ
from pipeline.audio.silence import speech_regions

RATE = 16_000
# A sentence keeps its pitch: a few seconds from the middle name it, and bound the FFT's cost on long regions.
_PITCH_WINDOW_S = 8.0
_LOWEST_PITCH_HZ = 60.0  # below this is hum and DC offset, not a voice
# Edges are looked for this far either side of where speech_regions put them...
_EDGE_SEARCH_S = 0.25
# ... as the first (last) sample louder than this share of the region's level (under it: noise, and the
# smear a lossy codec leaves after a sound stops) ...
_EDGE_LEVEL = 0.3
# ... after (before) a stretch this long with none: shorter quiet is a voice's zero crossing.
_EDGE_QUIET_S = 0.005


@dataclass(frozen=True)
class Region:
    start: float  # seconds from the start of the upload
    end: float
    pitch: float  # dominant pitch, Hz, rounded to the nearest PITCH_STEP_HZ

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def speaker(self) -> int:
        """Who speaks: the pitch band (pipeline.audio.samples.SPEAKER_BAND_HZ wide) the region is in."""
        return speaker_of(self.pitch)


@dataclass(frozen=True)
class Heard:
    duration: float  # seconds of decoded audio
    regions: tuple[Region, ...]


def decode(audio: bytes) -> np.ndarray:
    """int16 mono samples at RATE; raises pipeline.audio.errors.AudioDecodeError for what is not audio."""
    pcm = _plain_wav(audio)
    if pcm is not None:
        return pcm
    blocks = list(pcm_blocks(io.BytesIO(audio), rate=RATE))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)


def _plain_wav(audio: bytes) -> np.ndarray | None:
    """The samples of a 16 kHz 16-bit PCM WAV, read without a decoder: most small test uploads are one, and
    opening FFmpeg for each would make the emulator, not the client, the bottleneck of a benchmark."""
    if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(audio), "rb") as reader:
            if reader.getsampwidth() != 2 or reader.getframerate() != RATE or reader.getcomptype() != "NONE":
                return None
            channels = reader.getnchannels()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError):
        return None  # the decoder judges it
    samples = np.frombuffer(frames[: len(frames) // (2 * channels) * 2 * channels], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples


def hear(audio: bytes) -> Heard:
    """The upload's duration and speech regions (raises AudioDecodeError, as `decode`)."""
    samples = decode(audio)
    regions = []
    for guess in speech_regions(samples, RATE):
        first, last = sharpen(samples, int(guess[0] * RATE), int(guess[1] * RATE))
        regions.append(Region(round(first / RATE, 3), round(last / RATE, 3), dominant_pitch(samples[first:last])))
    return Heard(len(samples) / RATE, tuple(regions))


def sharpen(samples: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """A region's edges (sample indices) moved to where its sound starts and stops.

    speech_regions places them to a frame, give or take its padding, and differently for the same sentence
    in two uploads; words are counted from a region's length, so the edges are measured on the sound."""
    region = np.abs(samples[first:last].astype(np.int32))
    if not region.size:
        return first, last
    threshold = _EDGE_LEVEL * float(np.percentile(region, 99))
    return _edge(samples, first, threshold, rising=True), _edge(samples, last, threshold, rising=False)


def _edge(samples: np.ndarray, guess: int, threshold: float, rising: bool) -> int:
    """The start (rising) or end of a sound nearest `guess`; `guess` itself when none is in reach."""
    low, high = max(0, guess - int(_EDGE_SEARCH_S * RATE)), min(len(samples), guess + int(_EDGE_SEARCH_S * RATE))
    loud = np.flatnonzero(np.abs(samples[low:high].astype(np.int32)) > threshold)
    if not loud.size:
        return guess
    breaks = np.flatnonzero(np.diff(loud) > int(_EDGE_QUIET_S * RATE))
    edges = np.concatenate(([loud[0]], loud[breaks + 1])) if rising else np.concatenate((loud[breaks], [loud[-1]])) + 1
    edge = low + int(edges[np.argmin(np.abs(edges + low - guess))])
    # At the edge of the search, the sound goes on past it: the search did not reach its edge.
    reached = low < edge < high or (edge == low == 0) or (edge == high == len(samples))
    return edge if reached else guess


def dominant_pitch(samples: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency (FFT peak) of the samples' middle, rounded to the nearest PITCH_STEP_HZ."""
    window = int(_PITCH_WINDOW_S * rate)
    if len(samples) > window:
        first = (len(samples) - window) // 2
        samples = samples[first : first + window]
    if len(samples) < 2:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32) * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[frequencies < _LOWEST_PITCH_HZ] = 0
    peak = float(frequencies[int(np.argmax(spectrum))])
    return round(peak / PITCH_STEP_HZ) * PITCH_STEP_HZ


def speaker_of(pitch_hz: float) -> int:
    return int(pitch_hz // SPEAKER_BAND_HZ)


def voice_of(audio: bytes) -> tuple[float, int]:
    """A known speaker's reference clip: its duration and the pitch band (speaker) it speaks in."""
    samples = decode(audio)
    return len(samples) / RATE, speaker_of(dominant_pitch(samples))
