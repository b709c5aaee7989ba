"""Any recording as a stream of 16 kHz mono int16 blocks: demux, decode, resample, one block at a time.

FFmpeg is resilient on its own: it resyncs past a damaged packet and goes on. That is right for a scratch
in the middle of a long recording, wrong for a file that is garbage after a valid header or cut short, which
would otherwise come out as a shorter transcript and no error. So besides FFmpeg's errors three checks
turn silent loss into AudioDecodeError: a run of undecodable packets, too large a share of them, and
(at the end) much less audio than the header declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer

from pipeline.audio.errors import AudioDecodeError
from pipeline.audio.probe import Source, audio_stream, codec_name, declared_duration, open_container

RATE = 16_000
BLOCK_S = 1.0  # audio gathered per yielded block: few Python round trips, 32 kB at 16 kHz
MAX_BAD_RUN = 20  # undecodable packets in a row: the rest of the stream is garbage, not a scratch
MAX_BAD_SHARE = 0.05  # of all packets, checked at the end (beyond MIN_BAD_COUNTED of them)
MIN_BAD_COUNTED = 10
MIN_DECODED_SHARE = 0.9  # of the declared duration, below which the file is called truncated


def pcm_blocks(source: Source, rate: int = RATE) -> Iterator[np.ndarray]:
    """int16 mono samples at `rate`, in blocks of about BLOCK_S; never more of the file than that in memory.
    Raises AudioDecodeError on the way (undecodable data) or once the stream ends (too little of it)."""
    with open_container(source) as container:
        stream = audio_stream(container)
        decoder = _Decoder(stream, rate)
        yield from _gather(decoder.samples(container), int(rate * BLOCK_S))
        decoder.check_complete(_trusted_duration(container, stream))


def _gather(pieces: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Decoder frames (about 1000 samples each) joined into blocks of at least `size` samples."""
    held: list[np.ndarray] = []
    count = 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count >= size:
            yield np.concatenate(held)
            held, count = [], 0
    if held:
        yield np.concatenate(held)


def _trusted_duration(container: InputContainer, stream: AudioStream) -> float | None:
    """The declared duration, unless it may be FFmpeg's guess of file size / bit rate (an MP3 without a
    Xing header): a guess from a quiet first frame's low bit rate can be far too long for a sound file.
    A truncated file declares more than its bytes can hold at its bit rate, so it is still caught."""
    declared = declared_duration(container, stream)
    if declared is None or not stream.bit_rate or not container.size or container.size <= 0:
        return declared
    size_based = container.size * 8 / stream.bit_rate
    return declared if declared > 1.02 * size_based else None


class _Decoder:
    """One stream's packets to resampled sample arrays, counting what could not be decoded."""

    def __init__(self, stream: AudioStream, rate: int) -> None:
        self.stream = stream
        self.rate = rate
        self.codec = codec_name(stream)
        self.resampler: av.AudioResampler | None = None
        self.input_shape: tuple[str, str, int] | None = None
        self.emitted = 0  # samples at `rate` handed out
        self.packets = 0
        self.bad = 0
        self.bad_run = 0

    @property
    def position_s(self) -> float:
        return self.emitted / self.rate

    def samples(self, container: InputContainer) -> Iterator[np.ndarray]:
        try:
            for packet in container.demux(self.stream):
                for frame in self._decode(packet):
                    yield from self._resample(frame)
        except av.error.FFmpegError as error:  # the demuxer's: it cannot find the next packet at all
            raise AudioDecodeError(
                f"cannot read: {error.strerror} in the {self.codec} stream at {self.position_s:.1f} s") from error
        yield from self._flush()

    def _decode(self, packet: av.Packet) -> list[AudioFrame]:
        if packet.size:
            self.packets += 1  # the final empty packet only flushes the decoder
        try:
            frames = self.stream.decode(packet)
        except av.error.FFmpegError:
            self._count_bad()
            return []
        self.bad_run = 0
        return frames

    def _count_bad(self) -> None:
        self.bad += 1
        self.bad_run += 1
        if self.bad_run >= MAX_BAD_RUN:
            raise AudioDecodeError(f"cannot decode: invalid data in the {self.codec} stream at {self.position_s:.1f} s")

    def _resample(self, frame: AudioFrame) -> Iterator[np.ndarray]:
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self.input_shape:
            # PyAV's resampler takes one input format for life; some streams change rate or layout midway.
            yield from self._flush()
            self.resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
            self.input_shape = shape
        assert self.resampler is not None
        yield from self._arrays(self.resampler.resample(frame))

    def _flush(self) -> Iterator[np.ndarray]:
        if self.resampler is not None:
            yield from self._arrays(self.resampler.resample(None))

    def _arrays(self, frames: list[AudioFrame]) -> Iterator[np.ndarray]:
        for frame in frames:
            samples = frame.to_ndarray()[0]  # packed mono: one row
            self.emitted += len(samples)
            yield samples

    def check_complete(self, declared_s: float | None) -> None:
        """Raise if the stream came out empty, mostly undecodable, or much shorter than declared."""
        if self.emitted == 0:
            raise AudioDecodeError(f"no audio could be decoded from the {self.codec} stream")
        if self.bad > max(MIN_BAD_COUNTED, MAX_BAD_SHARE * self.packets):
            raise AudioDecodeError(f"cannot decode: {self.bad} of {self.packets} packets of the {self.codec} "
                                   "stream are invalid")
        if declared_s is not None and self.position_s < MIN_DECODED_SHARE * declared_s:
            raise AudioDecodeError(
                f"truncated: the header says {declared_s:.1f} s, only {self.position_s:.1f} s could be decoded")
