"""What a recording is, from its headers: duration, codec, rate, channels, bit rate, container.

Also the one place that opens a source for reading, so probe and decode refuse the same files with the
same words: FFmpeg's refusals become AudioDecodeError, a missing or unreadable file stays an OSError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer

from pipeline.audio.errors import AudioDecodeError

Source = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float | None  # from the container/stream (None if unknown)
    codec: str  # e.g. "pcm_s16le", "mp3", "aac", "flac", "opus"
    sample_rate: int
    channels: int
    bit_rate: int | None  # bits/s of the audio stream or container, None if unknown
    container: str  # PyAV format name


def probe(source: Source) -> MediaInfo:
    """The facts a recording's headers state, without decoding it; AudioDecodeError if it is not audio."""
    with open_container(source) as container:
        stream = audio_stream(container)
        return MediaInfo(
            duration_s=declared_duration(container, stream),
            codec=codec_name(stream),
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
            bit_rate=stream.bit_rate or container.bit_rate or None,
            container=container.format.name,
        )


@contextmanager
def open_container(source: Source) -> Iterator[InputContainer]:
    """The source opened by FFmpeg. A file object is read from its beginning (containers seek to absolute
    offsets) and left at the position it had."""
    target = os.fspath(source) if isinstance(source, os.PathLike) else source
    position = _rewind(target)
    try:
        container = _open(target)
        try:
            yield container
        finally:
            container.close()
    finally:
        if position is not None and not isinstance(target, str):
            target.seek(position)


def _rewind(target: str | BinaryIO) -> int | None:
    if isinstance(target, str) or not target.seekable():
        return None
    position = target.tell()
    target.seek(0)
    return position


def _open(target: str | BinaryIO) -> InputContainer:
    try:
        return av.open(target, "r")
    except OSError:
        raise  # av.error.FileNotFoundError and friends are OSErrors too: the file, not its content
    except av.error.FFmpegError as error:
        raise AudioDecodeError(f"not a readable media file: {error.strerror}") from error


def audio_stream(container: InputContainer) -> AudioStream:
    """The container's main audio stream (FFmpeg's pick when there are several)."""
    if not container.streams.audio:
        raise AudioDecodeError("no audio stream in the file")
    # FFmpeg's pick when it has one; it has none when no stream's parameters could be found (random bytes).
    best = container.streams.best("audio")
    stream = best if isinstance(best, AudioStream) else container.streams.audio[0]
    if stream.codec_context.sample_rate <= 0 or stream.codec_context.channels <= 0:
        raise AudioDecodeError(f"the {codec_name(stream)} stream declares no sample rate or channels")
    return stream


def declared_duration(container: InputContainer, stream: AudioStream) -> float | None:
    """Seconds the stream's header (or else the container's) says the audio lasts."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def codec_name(stream: AudioStream) -> str:
    # The canonical name, not the decoder's: "mp3", not "mp3float".
    return stream.codec_context.codec.canonical_name
