"""Recordings of any length: decoded, cut at silences, re-encoded as Ogg/Opus, sent chunk by chunk.

Recordings are made once by `pipeline.audio.samples` (tone-burst "speech" at known offsets, quiet room noise
between sentences) and kept under .cache/bench-audio/ for later runs. The emulator runs in its own process
and decodes every chunk it is sent (as the service does); the client runs as `python -m pipeline run SPEC -q`
in a child process, so its CPU (os.wait4) and peak RSS (VmHWM) are its own. This measures:

1. Quota efficiency at a whisper-like quota (requests per minute only): ten one-hour recordings (quick: two
   10-minute ones, cut into 2-minute chunks so there are requests to pace), mixed WAV (16 kHz mono), MP3
   (44.1 kHz stereo, 128 kbps) and M4A (AAC, 48 kHz mono, 96 kbps), against an emulator admitting one
   request per window of 60/RPM s (its sliding window holds exactly one), the spec claiming the same RPM.
   The RPM is sized so the quota needs about 120 s (quick: 40 s) for the chunks the recordings should make.
   The ideal is the time the quota needs for the chunk requests the emulator admitted (one 60/RPM interval
   each: the first goes at once, the last answer closes the run); the figure is ideal / child wall time
   (interpreter start-up included). Target >= 0.95. The note says when the first and the last chunk were
   admitted (what start-up and the tail cost); the steady admission rate (middle 80%) against the quota's
   shows the pacing alone (info). Every recording must come back as exactly one row, and the rows'
   `chunks` must add up to the requests admitted. The emulator's decoding shares the machine's cores.
2. The client's CPU per audio hour in that run (decoding, resampling, finding silences and Opus encoding
   dominate; start-up is included, which a 20-minute quick run feels): target <= 20 CPU-s per audio hour.
3. Peak RSS of one 30-minute WAV against one 3-hour WAV (quick: 10 against 30 minutes, cut into 2-minute
   chunks), no quota: flat (<= 1.2x) and < 200 MB each. Both are longer than one chunk, so both hold a full
   window of samples while cutting; a file shorter than one chunk holds less, and says nothing about growth.
   WAV because a reader that held a whole file would show most there (a 3-hour WAV is 330 MB).
   The CPU difference between the two runs gives the CPU per audio hour without start-up (info).
4. Bytes uploaded against the source's bytes (info): the file parts the emulator received (its stats'
   `upload_bytes`), against the recordings' sizes on disk.
Also (info): how far the stitched segments' starts are from the truth's sentence starts, which catches a
chunk's offset applied wrongly or a sentence doubled where two chunks overlap.
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from bench.harness import ROOT, ChildRun, Emulator, Figure, log, run_child, steady_rate, write_spec
from pipeline.audio import samples
from pipeline.endpoints.speech_models import ANY_MODEL_MAX_S

NAME = "longaudio"
CACHE = ROOT / ".cache" / "bench-audio"
CACHE_VERSION = 1  # bump when the recordings below change: a new folder is made, the old one can go
DEPLOYMENT = "whisper"
CONCURRENCY = 4
GLOB = "**/*.{wav,mp3,m4a}"
DEFAULT_CHUNK_S = ANY_MODEL_MAX_S  # what the client cuts to for whisper (1380 s)
QUICK_CHUNK_S = 120.0
IDEAL_S, QUICK_IDEAL_S = 120.0, 40.0
MIN_QUOTA_RATIO = 0.95
MAX_CPU_PER_HOUR = 20.0
MAX_RSS_MB = 200.0
MAX_RSS_GROWTH = 1.20

# (extension, sample rate, channels, bit rate): what recordings of meetings and calls come as.
MIX = (("wav", 16_000, 1, None), ("mp3", 44_100, 2, 128_000), ("m4a", 48_000, 1, 96_000))


@dataclass(frozen=True)
class Recording:
    name: str
    minutes: float
    rate: int
    channels: int
    bit_rate: int | None
    seed: int


@dataclass(frozen=True)
class AudioSet:
    """A folder of recordings, made once into the cache."""

    name: str
    recordings: tuple[Recording, ...]

    @property
    def hours(self) -> float:
        return sum(r.minutes for r in self.recordings) / 60

    @property
    def label(self) -> str:
        minutes = {r.minutes for r in self.recordings}
        length = _length(minutes.pop()) if len(minutes) == 1 else "mixed-length"
        return length if len(self.recordings) == 1 else f"{len(self.recordings)} x {length}"


def _length(minutes: float) -> str:
    return f"{minutes / 60:g}-hour" if minutes % 60 == 0 else f"{minutes:g}-minute"


def mixed(name: str, count: int, minutes: float) -> AudioSet:
    recordings = []
    for i in range(count):
        extension, rate, channels, bit_rate = MIX[i % len(MIX)]
        recordings.append(Recording(f"rec-{i:02d}.{extension}", minutes, rate, channels, bit_rate, seed=i))
    return AudioSet(name, tuple(recordings))


def one_wav(name: str, minutes: float) -> AudioSet:
    return AudioSet(name, (Recording(f"{name}.wav", minutes, 16_000, 1, None, seed=100),))


# ---------------------------------------------------------------- the cache


def _write(folder: Path, recording: Recording) -> None:
    plan = samples.script(recording.minutes * 60, speakers=2, seed=recording.seed)
    samples.write_with_manifest(folder / recording.name, plan, rate=recording.rate, channels=recording.channels,
                                bit_rate=recording.bit_rate)


def ensure(audio: AudioSet) -> Path:
    """The set's folder, made (into a staging folder, then renamed: a cut-short build is never used) if the
    cache does not hold it yet."""
    folder = CACHE / f"{audio.name}-v{CACHE_VERSION}"
    if folder.is_dir():
        return folder
    staging = CACHE / ".staging" / folder.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"  longaudio: making {audio.label} recording(s) ({audio.hours:.1f} h) into {folder} (once)")
    with ProcessPoolExecutor(max(1, min(len(audio.recordings), os.cpu_count() or 1))) as pool:
        list(pool.map(_write, [staging] * len(audio.recordings), audio.recordings))
    os.replace(staging, folder)
    return folder


# ---------------------------------------------------------------- one run


@dataclass
class Seen:
    """One `pipeline run` of a folder against the emulator."""

    audio: AudioSet
    folder: Path
    run: ChildRun
    rows: list[dict[str, Any]]
    stats: dict[str, Any]
    emulator_cpu_s: float
    started: float  # epoch seconds when the child was started (the emulator's admitted_times are epoch too)

    def timeline(self) -> str:
        """When the chunks were admitted, from the child's start: where a run loses time to the quota."""
        times = sorted(t - self.started for t in self.stats["admitted_times"])
        if not times:
            return "no request admitted"
        widest = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        return (f"first chunk admitted {times[0]:.1f} s after the start, last at {times[-1]:.1f} s, the run "
                f"ended {self.run.wall_s - times[-1]:.1f} s later; widest gap between admissions {widest:.1f} s")

    @property
    def admitted(self) -> int:
        return int(self.stats["by_status"].get("200", 0))

    @property
    def throttled(self) -> int:
        return int(self.stats["by_status"].get("429", 0))

    @property
    def source_bytes(self) -> int:
        return sum((self.folder / r.name).stat().st_size for r in self.audio.recordings)


def _spec(work: Path, url: str, audio: Path, rpm: int | None, chunk_s: float | None) -> Path:
    spec = write_spec(work, url, "transcription", None, deployment=DEPLOYMENT, name="longaudio",
                      inputs={"path": str(audio), "glob": GLOB},
                      limits={"concurrency": CONCURRENCY, "requests_per_minute": rpm, "timeout_s": 300},
                      params={"response_format": "verbose_json", "timestamp_granularities": ["segment"]})
    if chunk_s is not None:
        spec.write_text(spec.read_text() + f"[audio]\nmax_chunk_seconds = {chunk_s:g}\n")
    return spec


def _rows(out: Path) -> list[dict[str, Any]]:
    results = out / "results"
    if not results.is_dir() or not any(results.glob("*.parquet")):
        return []
    columns = ["id", "duration", "chunks", "segments"]
    return ds.dataset(results, format="parquet").to_table(columns=columns).to_pylist()


def transcribe(emulator: Emulator, work: Path, audio: AudioSet, *, rpm: int | None = None,
               chunk_s: float | None = None, timeout_s: float = 900.0) -> Seen:
    """The set's folder through `python -m pipeline run` against a freshly reset emulator."""
    folder = ensure(audio)
    emulator.reset()
    cpu_before = emulator.cpu_seconds()
    scratch = Path(tempfile.mkdtemp(dir=work))
    try:
        spec = _spec(scratch, emulator.url, folder, rpm, chunk_s)
        started = time.time()
        run = run_child([sys.executable, "-m", "pipeline", "run", str(spec), "-q"], timeout_s=timeout_s)
        rows = _rows(scratch / "out")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seen = Seen(audio, folder, run, rows, emulator.stats(), emulator.cpu_seconds() - cpu_before, started)
    quota = f" at RPM {rpm}" if rpm else ""
    log(f"  longaudio {audio.label} ({audio.hours:.3g} h){quota}: exit {run.exit_code}, {len(rows)}/"
        f"{len(audio.recordings)} rows in {run.wall_s:.1f} s, cpu {run.cpu_s:.1f} s, peak RSS "
        f"{run.peak_rss_mb:.0f} MB, {seen.stats['requests']} requests ({seen.admitted} admitted, "
        f"{seen.throttled} x 429), emulator cpu {seen.emulator_cpu_s:.1f} s")
    return seen


# ---------------------------------------------------------------- figures


def quota_for(audio: AudioSet, chunk_s: float, ideal_s: float) -> tuple[int, float]:
    """(RPM, window_s): the RPM at which the quota needs about `ideal_s` for the chunks the set should make
    (a cut at a silence can add one), and a window holding exactly one request."""
    expected = sum(-(-r.minutes * 60 // chunk_s) for r in audio.recordings)
    rpm = max(1, round(expected * 60 / ideal_s))
    return rpm, 60 / rpm


def _quota_figures(seen: Seen, rpm: int, window_s: float) -> list[Figure]:
    ideal = seen.admitted * 60 / rpm
    ratio = ideal / seen.run.wall_s if seen.run.wall_s else 0.0
    chunks = sum(int(row["chunks"] or 0) for row in seen.rows)
    ids = [row["id"] for row in seen.rows]
    files = len(seen.audio.recordings)
    steady = steady_rate(seen.stats["admitted_times"])
    complete = seen.run.exit_code == 0 and len(ids) == len(set(ids)) == files and chunks == seen.admitted
    case = f"{seen.audio.label} recordings ({seen.audio.hours:.3g} h) at RPM {rpm}"
    setup = (f"{seen.admitted} chunk requests admitted at RPM {rpm} ({window_s:.2f} s windows of one request; "
             f"spec the same, concurrency {CONCURRENCY}): the quota needs {ideal:.1f} s; wall {seen.run.wall_s:.1f} s "
             f"(child process, start-up included); {seen.timeline()}; {seen.throttled} x 429 of "
             f"{seen.stats['requests']} requests; client cpu {seen.run.cpu_s:.1f} s, emulator cpu "
             f"{seen.emulator_cpu_s:.1f} s")
    return [
        Figure(NAME, f"{case}: wall time against the quota's ideal", seen.run.wall_s, "s", ideal,
               "quota-bound ideal", ratio, f"ideal/actual >= {MIN_QUOTA_RATIO:.2f}", ratio >= MIN_QUOTA_RATIO, setup),
        Figure(NAME, f"{case}: chunks admitted per second, steady (middle 80%)", steady or 0.0, "req/s",
               rpm / 60, "quota rate", (steady or 0.0) / (rpm / 60), "info", None,
               "the pacing alone, start-up and tail left out"),
        Figure(NAME, f"{case}: result rows", len(set(ids)), "rows", files, "recordings", len(set(ids)) / files,
               "all, once each; chunks = requests admitted", complete,
               f"exit {seen.run.exit_code}; {len(ids)} rows; chunks column sums to {chunks}, emulator admitted "
               f"{seen.admitted}"),
        Figure(NAME, f"{case}: peak RSS", seen.run.peak_rss_mb, "MB", None, "", None, "info", None,
               f"{CONCURRENCY} recordings in flight at most"),
    ]


def _audio_hours(seen: Seen) -> float:
    """Hours of audio the rows report (the recordings' own length when a row lacks its duration)."""
    durations = [row["duration"] for row in seen.rows if row.get("duration") is not None]
    return sum(durations) / 3600 if len(durations) == len(seen.audio.recordings) else seen.audio.hours


def _cpu_figure(seen: Seen) -> Figure:
    hours = _audio_hours(seen)
    per_hour = seen.run.cpu_s / hours if hours else 0.0
    return Figure(NAME, f"{seen.audio.label} recordings: client CPU per audio hour", per_hour, "CPU-s/h", None, "",
                  None, f"<= {MAX_CPU_PER_HOUR:g}", seen.run.exit_code == 0 and per_hour <= MAX_CPU_PER_HOUR,
                  f"{seen.run.cpu_s:.1f} CPU-s (user + system, all threads, start-up included) for {hours:.2f} h "
                  f"of audio in {seen.run.wall_s:.1f} s wall")


def _memory_figures(short: Seen, long: Seen) -> list[Figure]:
    growth = long.run.peak_rss_mb / short.run.peak_rss_mb if short.run.peak_rss_mb else None
    ok_short = short.run.exit_code == 0 and len(short.rows) == 1 and short.run.peak_rss_mb < MAX_RSS_MB
    ok_long = long.run.exit_code == 0 and len(long.rows) == 1 and long.run.peak_rss_mb < MAX_RSS_MB
    extra_h = long.audio.hours - short.audio.hours
    marginal = (long.run.cpu_s - short.run.cpu_s) / extra_h if extra_h > 0 else None
    return [
        Figure(NAME, f"peak RSS, one {short.audio.label} WAV, 16 kHz mono", short.run.peak_rss_mb, "MB", None, "",
               None, f"< {MAX_RSS_MB:g} MB", ok_short,
               f"{short.stats['requests']} requests, {short.run.wall_s:.1f} s wall, no quota"),
        Figure(NAME, f"peak RSS, one {long.audio.label} WAV, 16 kHz mono", long.run.peak_rss_mb, "MB",
               short.run.peak_rss_mb, f"{short.audio.label} run", growth,
               f"< {MAX_RSS_MB:g} MB and <= {MAX_RSS_GROWTH:.2f}x",
               ok_long and growth is not None and growth <= MAX_RSS_GROWTH,
               f"{long.stats['requests']} requests, {long.run.wall_s:.1f} s wall, no quota; source "
               f"{long.source_bytes / 2**20:.0f} MB"),
        Figure(NAME, "client CPU per audio hour, start-up left out", marginal or 0.0, "CPU-s/h", None, "", None,
               "info", None, f"({long.run.cpu_s:.1f} - {short.run.cpu_s:.1f} CPU-s) / {extra_h:.2f} h: the "
               f"{long.audio.label} run less the {short.audio.label} run, 16 kHz mono WAV"),
    ]


def _bytes_figure(seen: Seen) -> Figure:
    uploaded, source = int(seen.stats["upload_bytes"]), seen.source_bytes
    return Figure(NAME, f"{seen.audio.label} recordings: bytes uploaded against source bytes", uploaded / 2**20, "MB",
                  source / 2**20, "source files", uploaded / source if source else None, "info", None,
                  f"the file parts the emulator received (its stats' upload_bytes): {seen.admitted} chunks, "
                  f"{uploaded / max(1, seen.admitted) / 2**10:.0f} KiB each on average, "
                  f"{uploaded * 8 / max(1e-9, _audio_hours(seen) * 3600) / 1000:.1f} kbit/s of audio")


def _offset_errors(seen: Seen) -> tuple[list[float], int, int]:
    """For each truth sentence, how far the nearest stitched segment start is; segments and sentences seen."""
    errors: list[float] = []
    segments = sentences = 0
    for row in seen.rows:
        truth = samples.Script.from_json((seen.folder / (row["id"] + ".truth.json")).read_text())
        starts = sorted(float(s["start"]) for s in row.get("segments") or [])
        segments += len(starts)
        sentences += len(truth.sentences)
        if starts:
            errors += [min(abs(start - s.start) for start in starts) for s in truth.sentences]
    return errors, segments, sentences


def _offset_figure(seen: Seen) -> Figure | None:
    errors, segments, sentences = _offset_errors(seen)
    if not errors:
        return None
    errors.sort()
    p95 = errors[min(len(errors) - 1, int(len(errors) * 0.95))]
    return Figure(NAME, f"{seen.audio.label} recordings: segment starts against the truth, p95 error", p95 * 1000,
                  "ms", None, "", None, "info", None,
                  f"median {statistics.median(errors) * 1000:.1f} ms, max {errors[-1] * 1000:.1f} ms over {sentences} "
                  f"sentences (the nearest segment start to each); {segments} segments stitched for {sentences} "
                  "sentences")


def run(quick: bool, work: Path) -> list[Figure]:
    quota_set = mixed("ten-minutes-2", 2, 10) if quick else mixed("hours-10", 10, 60)
    short = one_wav("ten-minutes", 10) if quick else one_wav("thirty-minutes", 30)
    long = one_wav("thirty-minutes", 30) if quick else one_wav("three-hours", 180)
    chunk_s = QUICK_CHUNK_S if quick else None
    rpm, window_s = quota_for(quota_set, chunk_s or DEFAULT_CHUNK_S, QUICK_IDEAL_S if quick else IDEAL_S)
    for audio in (quota_set, short, long):
        ensure(audio)
    figures: list[Figure] = []
    with Emulator(rpm=rpm, window_s=window_s) as emulator:
        seen = transcribe(emulator, work, quota_set, rpm=rpm, chunk_s=chunk_s)
        figures += _quota_figures(seen, rpm, window_s)
        figures.append(_cpu_figure(seen))
        figures.append(_bytes_figure(seen))
        offsets = _offset_figure(seen)
        figures += [offsets] if offsets else []
        emulator.configure(rpm=None)
        figures += _memory_figures(transcribe(emulator, work, short, chunk_s=chunk_s),
                                   transcribe(emulator, work, long, chunk_s=chunk_s))
    return figures
