"""The audio package's one error.

    Exception
    └── AudioDecodeError   not audio, no audio stream, undecodable data, or a truncated file

A missing or unreadable file is not a decoding problem: it stays the OSError (FileNotFoundError,
PermissionError…) that opening it raised, so callers treat it as they treat any other input file.
"""

from __future__ import annotations


class AudioDecodeError(Exception):
    """A recording cannot be turned into samples; str() is a one-line reason naming what is wrong."""

    def __init__(self, reason: str) -> None:
        # One line whatever FFmpeg put into the reason: it lands in a failures row and a log line.
        super().__init__(" ".join(reason.split()))
