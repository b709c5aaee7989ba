"""Small, valid PNG files: a vertical two-colour gradient chosen by the prompt."""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(prompt: str, width: int, height: int) -> bytes:
    """An RGB PNG of width x height whose colours derive from the prompt's hash."""
    digest = hashlib.sha256(prompt.encode()).digest()
    top = np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float32)
    bottom = np.frombuffer(digest[3:6], dtype=np.uint8).astype(np.float32)
    # One colour per row keeps generation cheap and the zlib stream tiny.
    share = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    rows = (top * (1 - share) + bottom * share).astype(np.uint8)  # (height, 3)
    pixels = np.repeat(rows[:, None, :], width, axis=1).reshape(height, width * 3)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), pixels], axis=1)  # filter 0
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height read back from a PNG's IHDR (for tests and sanity checks)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height
