"""Speech audio out (what audio/speech answers; uploads are heard by hearing.py).

Only `wav` and `pcm` are real, decodable audio (16-bit PCM, 24 kHz, mono, as
OpenAI's TTS uses). `mp3`, `opus`, `aac` and `flac` answers start with the
format's correct magic bytes and headers followed by silent filler frames:
enough for content sniffing and file-type checks, not for a decoder.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np

SAMPLE_RATE = 24_000
CHARS_PER_SECOND = 15.0  # about the pace of OpenAI's voices at speed 1.0

SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def speech_duration_s(text: str, speed: float = 1.0) -> float:
    return max(0.5, len(text) / CHARS_PER_SECOND) / max(speed, 0.25)


def speech_samples(text: str, speed: float = 1.0) -> np.ndarray:
    """int16 samples: a tone whose pitch comes from the text, pulsing once per word."""
    count = int(speech_duration_s(text, speed) * SAMPLE_RATE)
    t = np.arange(count, dtype=np.float32) / SAMPLE_RATE
    pitch = 140.0 + (sum(text.encode()) % 160)
    words = max(1, len(text.split()))
    envelope = 0.55 + 0.45 * np.sin(np.pi * words * t / (count / SAMPLE_RATE)) ** 2
    wave_form = 0.3 * envelope * np.sin(2 * np.pi * pitch * t)
    return (wave_form * 32767).astype("<i2")


def speech_audio(text: str, fmt: str = "mp3", speed: float = 1.0) -> bytes:
    """Audio bytes for `text` in `fmt` (one of SPEECH_CONTENT_TYPES)."""
    if fmt == "pcm":
        return speech_samples(text, speed).tobytes()
    if fmt == "wav":
        return wav_bytes(speech_samples(text, speed))
    frames = max(1, int(speech_duration_s(text, speed) * 10))  # ~10 filler frames per second
    return _FAKE_ENCODERS[fmt](frames)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit WAV file holding `samples`."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def _mp3(frames: int) -> bytes:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return frame * frames


def _aac(frames: int) -> bytes:
    # ADTS header: AAC-LC, 24 kHz, mono, 64-byte frames.
    length = 64
    header = bytes([0xFF, 0xF1, 0x58, 0x40 | (length >> 11), (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC])
    return (header + bytes(length - len(header))) * frames


def _flac(frames: int) -> bytes:
    info = bytearray(34)  # STREAMINFO: 24 kHz, mono, 16 bits, length unknown
    info[10:18] = (SAMPLE_RATE << 44 | 0 << 41 | 15 << 36).to_bytes(8, "big")
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + bytes(info) + bytes(frames * 64)


def _opus(frames: int) -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48_000, 0, 0)
    page = b"OggS" + bytes([0, 2]) + bytes(8) + struct.pack("<II", 1, 0)
    page += bytes(4) + bytes([1, len(head)]) + head
    return page + bytes(frames * 64)


_FAKE_ENCODERS = {"mp3": _mp3, "aac": _aac, "flac": _flac, "opus": _opus}
