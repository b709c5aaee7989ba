"""A chunk's samples as a small Ogg/Opus file in memory, the form sent to the transcription service.

Settings, measured on samples.render speech at 16 kHz mono:
- 32 kbit/s: wideband Opus is clean for speech recognition there; 24 kbit/s would save a quarter of the
  bytes, but bytes are not what limits a chunk (its duration is), and the margin keeps noisy rooms clear.
- constrained VBR: the bytes stay within a few per cent of bit rate × duration whatever the content, so
  encoded_size_bound holds; plain VBR overshot the target by 4 % on tonal speech (7 % with the Ogg pages).
- compression_level 5 (of 10): half the CPU of the default 10 at the same size.
The Opus pre-skip (the encoder's look-ahead) is written into the Ogg header and the last page's granule
position trims the padding, so a decoder gives back exactly the samples given: offsets stay exact.
"""

from __future__ import annotations

import io

import av
import numpy as np

from pipeline.audio.decode import RATE

CHUNK_FORMAT = "ogg"  # Ogg/Opus: the extension sent to the service
CHUNK_CONTENT_TYPE = "audio/ogg"
CHUNK_BIT_RATE = 32_000
OPUS_OPTIONS = {"vbr": "constrained", "compression_level": "5"}
OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)  # the only rates libopus encodes
ENCODE_BLOCK_S = 10.0  # samples handed to the encoder at a time
SIZE_MARGIN = 1.1  # constrained VBR with its Ogg pages measured 1.03 × bit rate × duration, noise included
CONTAINER_OVERHEAD_BYTES = 1024  # Ogg headers (OpusHead, OpusTags) and the first pages: short chunks


def encode(samples: np.ndarray, rate: int = RATE) -> bytes:
    """int16 mono samples as the bytes of an Ogg/Opus file."""
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"encode takes int16 mono samples, not {samples.dtype} of shape {samples.shape}")
    if rate not in OPUS_RATES:
        raise ValueError(f"Opus encodes at {', '.join(map(str, OPUS_RATES))} Hz, not {rate}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=CHUNK_FORMAT) as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono", options=OPUS_OPTIONS)
        stream.bit_rate = CHUNK_BIT_RATE
        step = int(ENCODE_BLOCK_S * rate)
        for first in range(0, len(samples), step):
            container.mux(stream.encode(_frame(samples[first:first + step], rate, first)))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _frame(block: np.ndarray, rate: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block)[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    return frame


def encoded_size_bound(duration_s: float) -> int:
    """At least as many bytes as encode() makes of `duration_s` of audio: to plan chunks under a byte limit."""
    return int(CHUNK_BIT_RATE / 8 * max(duration_s, 0.0) * SIZE_MARGIN) + CONTAINER_OVERHEAD_BYTES
