#!/usr/bin/env python3
"""Build a long recording with known sentence offsets, and two short ones beside it.

Usage::

    python scripts/make_long_recording.py                       # 30 min WAV into sample_data/long_audio/
    python scripts/make_long_recording.py --minutes 60 --format mp3 --out /tmp/talks
    python scripts/make_long_recording.py --if-missing          # keep what an earlier run with the same options made

With espeak-ng on PATH the sentences are real speech: each one voiced by espeak-ng (voices taking turns),
trimmed to its sound, resampled to 16 kHz and placed after 0.5-2 s of quiet room noise. Without it the
recording is the tone-burst "speech" of ``pipeline.audio.samples``. Either way the output is streamed to
the encoder sentence by sentence (an hour is never held in memory) and is the same for the same options.

Beside each recording, ``<file name>.truth.json`` says where each sentence is: ``{"duration", "source",
"options", "sentences": [{"start", "end", "text", "voice"}]}`` for espeak-ng speech; for tone bursts it is
``pipeline.audio.samples.Script``'s JSON (``Script.from_json`` reads it) plus ``source`` and ``options``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
import wave
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.audio import samples

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUT = ROOT / "sample_data" / "long_audio"
RATE = samples.RATE
LEAD_S = 0.7  # room noise before the first sentence
TAIL_S = 0.3  # at least this much room noise after the last one
PAUSE_S = (0.5, 2.0)
NOISE_DB = -60.0  # the room: never digital silence, as in a real recording
SPEECH_WPM = 165
VOICES = (("en-us", 45), ("en-gb", 60), ("en-us", 70), ("en-gb-scotland", 40))  # (voice, pitch 0-99)
LOOKAHEAD = 8  # sentences voiced ahead of the one being written (bounded: memory stays flat)
SOUND_FLOOR = 300  # |sample| above this is speech when trimming espeak-ng's own leading/trailing quiet

# The short recordings put beside the long one: (relative path, seconds, seed offset).
SHORT_CLIPS = (("clips/voicemail.mp3", 20.0, 1), ("clips/standup.m4a", 75.0, 2))

SUBJECTS = ("The support team", "Our new intern", "Maria", "The finance department", "Everyone on the call",
            "The night shift", "Our largest customer", "The design group", "Peter", "The release manager",
            "The warehouse in Leeds", "The board")
ACTIONS = ("will review", "has finished", "asked about", "is still waiting for", "wants to postpone",
           "already approved", "could not find", "will present", "is rewriting", "signed off on",
           "raised a concern about", "needs more time for")
OBJECTS = ("the quarterly report", "the database migration", "the new pricing page", "the holiday schedule",
           "the security audit", "the mobile release", "the hiring plan", "the shipping delays",
           "the budget forecast", "the onboarding guide", "the outage review", "the office move")
ENDINGS = ("before Friday.", "after lunch.", "by the end of the month.", "next week.", "this afternoon.",
           "as soon as possible.", "in the next sprint.", "before the board meeting.", "tomorrow morning.",
           "once the numbers are in.", "without further changes.", "at the next stand-up.")


@dataclass(frozen=True)
class Spoken:
    """One sentence as placed in the recording (seconds from its start)."""

    start: float
    end: float
    text: str
    voice: str


# ---------------------------------------------------------------- sentences and their sound


def sentences(seed: int) -> Iterator[tuple[str, str, int]]:
    """An endless, seeded stream of (text, voice, pitch); consecutive sentences never share a voice."""
    rng = np.random.default_rng(seed)
    turn = 0
    while True:
        words = [part[int(rng.integers(len(part)))] for part in (SUBJECTS, ACTIONS, OBJECTS, ENDINGS)]
        turn = (turn + 1 + int(rng.integers(len(VOICES) - 1))) % len(VOICES)
        voice, pitch = VOICES[turn]
        yield " ".join(words), voice, pitch


def voiced(text: str, voice: str, pitch: int) -> np.ndarray:
    """int16 mono samples at RATE of espeak-ng speaking `text`, trimmed to the sound itself."""
    command = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(SPEECH_WPM), "--stdout", "--", text]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:  # --stdout's header says "unknown length": read to the end
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    pcm = _resampled(pcm, rate)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SOUND_FLOOR)
    return pcm[loud[0]:loud[-1] + 1] if loud.size else pcm


def _resampled(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    frames = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def voiced_ahead(seed: int, workers: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """`voiced` for `sentences(seed)` in order, LOOKAHEAD at a time on threads (espeak-ng is a process each)."""
    stream = sentences(seed)
    with ThreadPoolExecutor(workers) as pool:
        ahead: deque[tuple[str, str, Future[np.ndarray]]] = deque()
        try:
            while True:
                while len(ahead) < LOOKAHEAD:
                    text, voice, pitch = next(stream)
                    ahead.append((text, voice, pool.submit(voiced, text, voice, pitch)))
                text, voice, future = ahead.popleft()
                yield text, voice, future.result()
        finally:
            for _, _, future in ahead:
                future.cancel()


# ---------------------------------------------------------------- the recording, streamed


class Encoder:
    """int16 mono blocks at RATE in, an encoded file out (format from the extension, as samples.FORMATS)."""

    def __init__(self, path: Path, extension: str) -> None:
        container_format, codec = samples.FORMATS[extension]
        self.container = av.open(str(path), "w", format=container_format)
        self.stream = self.container.add_stream(codec, rate=48_000 if codec == "libopus" else RATE, layout="mono")
        self.resampler = av.AudioResampler(format=self.stream.format.name, layout="mono", rate=self.stream.rate)
        self.pts = 0

    def write(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        self.pts += block.shape[0]
        self._encode(self.resampler.resample(frame))

    def close(self) -> None:
        self._encode(self.resampler.resample(None))
        self._mux(None)
        self.container.close()

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            self._mux(frame)

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self.stream.encode(frame):
            self.container.mux(packet)


class Room:
    """The room's noise, seeded: what is heard between sentences and under them."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.level = 32767 * 10 ** (NOISE_DB / 20)

    def noise(self, count: int) -> np.ndarray:
        return self.level * self.rng.standard_normal(count)

    def quiet(self, seconds: float) -> np.ndarray:
        return _int16(self.noise(round(seconds * RATE)))

    def over(self, speech: np.ndarray) -> np.ndarray:
        return _int16(speech + self.noise(speech.shape[0]))


def _int16(block: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(block), -32768, 32767).astype(np.int16)


def write_speech(path: Path, extension: str, duration_s: float, seed: int) -> list[Spoken]:
    """Sentences voiced by espeak-ng with pauses between them, filling `duration_s`, streamed to `path`."""
    pauses = np.random.default_rng([seed, 1])
    room = Room(seed)
    total = round(duration_s * RATE)
    placed: list[Spoken] = []
    encoder = Encoder(path, extension)
    written = 0
    try:
        gap = LEAD_S
        for text, voice, speech in voiced_ahead(seed, workers=max(2, os.cpu_count() or 2)):
            start = written + round(gap * RATE)
            if start + speech.shape[0] > total - TAIL_S * RATE:
                break
            encoder.write(room.quiet((start - written) / RATE))
            encoder.write(room.over(speech))
            placed.append(Spoken(round(start / RATE, 3), round((start + speech.shape[0]) / RATE, 3), text, voice))
            written = start + speech.shape[0]
            gap = float(pauses.uniform(*PAUSE_S))
        for first in range(written, total, RATE * 10):
            encoder.write(room.quiet(min(RATE * 10, total - first) / RATE))
    finally:
        encoder.close()
    return placed


# ---------------------------------------------------------------- files and manifests


def truth_path(recording: Path) -> Path:
    """`talk.wav` -> `talk.wav.truth.json`, as samples.write_with_manifest names it."""
    return recording.with_name(recording.name + ".truth.json")


def make_recording(path: Path, duration_s: float, seed: int, speech: bool) -> dict[str, Any]:
    """One recording and its manifest, each under a temporary name first: a run cut short leaves no file
    that looks finished. Returns the manifest."""
    extension = path.suffix.lower().lstrip(".")
    partial = path.with_name(path.name + ".part")
    options = {"duration_s": duration_s, "seed": seed}
    if speech:
        placed = write_speech(partial, extension, duration_s, seed)
        manifest: dict[str, Any] = {"duration": duration_s, "source": "espeak-ng", "options": options,
                                    "sentences": [asdict(s) for s in placed]}
    else:
        plan = samples.script(duration_s, speakers=2, seed=seed)
        _write_tones(partial, extension, plan)
        manifest = {**json.loads(plan.to_json()), "source": "tone bursts", "options": options}
    os.replace(partial, path)
    truth_path(path).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _write_tones(partial: Path, extension: str, plan: samples.Script) -> None:
    """samples.write picks the format from the name's extension, so write under a name that has it."""
    staged = partial.with_name(partial.name + "." + extension)
    samples.write(staged, plan)
    os.replace(staged, partial)


def is_current(path: Path, duration_s: float, seed: int, speech: bool) -> bool:
    """An earlier run made this recording with the same options (and the same kind of sound)."""
    try:
        manifest = json.loads(truth_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = "espeak-ng" if speech else "tone bursts"
    return path.exists() and manifest.get("source") == wanted and manifest.get("options") == {
        "duration_s": duration_s, "seed": seed}


def remove_other_formats(out: Path, name: str, keep: Path) -> None:
    """An earlier run's `<name>.<other format>` would be transcribed too: it goes."""
    for extension in samples.FORMATS:
        old = out / f"{name}.{extension}"
        if old != keep and old.exists():
            old.unlink()
            truth_path(old).unlink(missing_ok=True)


def build(out: Path, name: str, minutes: float, extension: str, seed: int, if_missing: bool) -> list[Path]:
    """The long recording and the short clips under `out`; the paths of those written (not kept)."""
    speech = shutil.which("espeak-ng") is not None
    if not speech:
        print("espeak-ng not found: writing tone-burst \"speech\" (pipeline.audio.samples) instead", file=sys.stderr)
    long_path = out / f"{name}.{extension}"
    remove_other_formats(out, name, long_path)
    wanted = [(long_path, minutes * 60.0, seed)]
    wanted += [(out / relative, seconds, seed + offset) for relative, seconds, offset in SHORT_CLIPS]
    written = []
    for path, seconds, clip_seed in wanted:
        if if_missing and is_current(path, seconds, clip_seed, speech):
            print(f"kept {shown(path)}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        manifest = make_recording(path, seconds, clip_seed, speech)
        print(f"wrote {shown(path)} ({seconds / 60:.1f} min, {len(manifest['sentences'])} sentences, "
              f"{path.stat().st_size / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s")
        written.append(path)
    return written


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the long recording (default 30)")
    parser.add_argument("--format", default="wav", choices=("wav", "mp3", "m4a", "flac", "ogg"),
                        help="the long recording's format (default wav)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {shown(DEFAULT_OUT)})")
    parser.add_argument("--name", default="meeting", help="the long recording's file name, without extension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--if-missing", action="store_true",
                        help="keep recordings an earlier run made with the same options")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    build(args.out.resolve(), args.name, args.minutes, args.format, args.seed, args.if_missing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
