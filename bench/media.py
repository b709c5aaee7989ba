"""Media endpoints (GitHub issue 4): transcription of many small files and image generation.

Against the emulator (its own process, `image_size_px` = 256, 20 ms latency) this measures:

1. Transcription throughput: 1,000 small WAV files (quick: 400; 0.5 s, 16 kHz mono, written
   with the stdlib `wave` module) in 20 nested subfolders, picked up by a glob; no quota,
   concurrency 8. Ours runs as `python -m pipeline run SPEC -q` in a child process (results
   into Parquet); the reference is a self-contained openai SDK script in another child process
   (`AsyncAzureOpenAI.audio.transcriptions.create`, each file opened, the same concurrency
   through a semaphore, texts written to one JSONL file at the end). Both children pay their
   interpreter start-up and imports, so "whole run" is files / child wall time; "steady" is the
   emulator's arrival rate over the middle 80% of the requests (start-up and tail dropped).
   Every file must come back as exactly one result row. Full runs take the best of two rounds,
   alternating which client goes first. Target: ours at least as fast as the SDK script.
2. Peak RSS as the folder grows: the same job on 250 and on 1,000 files (quick: 100 and 400;
   the large runs are those of 1); the peak is the child's VmHWM. Held against the small run:
   <= 1.20x, and under 400 MB.
3. Image generation: 500 prompts (quick: 100) from a JSONL file to dall-e-3, b64_json, n = 1,
   the same concurrency; ours writes each PNG (temp name, fsync, rename) and a Parquet row per
   prompt, the SDK script decodes each image and writes it with `Path.write_bytes`. The emulator
   draws 256 px images whatever size is asked, so its own CPU stays small. Every prompt must
   leave one file. Images/s is information only: ours holds a worker slot while it fsyncs, which
   shows at the emulator's 20 ms per image and not at a real service's seconds.
4. Quota efficiency at a low request quota: the emulator enforces RPM 60 over 1 s sliding
   windows (one request per second: Azure counts a per-minute quota per window) and the spec
   claims the same 60 RPM; 30 requests (quick: 15), so about 30 s. Ours runs as a user runs it,
   `python -m pipeline run` in a child process: not in the benchmark's process, whose bigger
   heap has longer garbage-collection pauses (one of 60 ms delays a request past the pacer's
   slack at this rate and earns a 429). The steady admitted rate (middle 80% of the emulator's
   admitted arrival times, `steady_rate`) is divided by the quota's rate (1 req/s); the share of
   429s must stay under 1%. For transcription and for images (image quotas are per minute too).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import sys
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from bench import clients
from bench.harness import (
    ChildRun,
    Emulator,
    Figure,
    log,
    run_child,
    steady_rate,
    write_jsonl,
    write_spec,
)

NAME = "media"
AUDIO_DEPLOYMENT = "whisper"
IMAGE_DEPLOYMENT = "dall-e-3"
IMAGE_SIZE = "1024x1024"  # what the request asks (dall-e-3 accepts 1024x1024 and two others)
IMAGE_PX = 256  # what the emulator draws whatever the size asked
CONCURRENCY = 8
LATENCY_MS = 20.0
CHILD_TIMEOUT_S = 300.0
GLOB = "**/*.wav"
SAMPLE_RATE = 16_000
CLIP_S = 0.5
TARGET_MB = 400.0
TARGET_GROWTH = 1.20
QUOTA_RPM = 60
MIN_QUOTA_RATIO = 0.97
MAX_429_SHARE = 0.01

SpecWriter = Callable[[Path, str, Path, int | None], Path]  # (folder, emulator URL, input, spec RPM) -> spec


# ---------------------------------------------------------------- inputs


def _tone(pitch: float) -> bytes:
    """CLIP_S seconds of a sine tone, 16-bit little-endian mono samples."""
    count = int(SAMPLE_RATE * CLIP_S)
    samples = (int(8000 * math.sin(2 * math.pi * pitch * n / SAMPLE_RATE)) for n in range(count))
    return struct.pack(f"<{count}h", *samples)


def write_audio_folder(root: Path, count: int) -> Path:
    """`count` small WAV files under root/speaker<k>/session<j>/clip<i>.wav (20 leaf folders).

    Eight tones computed once; the first sample of each file carries its index, so no two
    files are the same bytes (the emulator's transcript comes from the bytes).
    """
    tones = [_tone(220.0 + 55.0 * k) for k in range(8)]
    for i in range(count):
        folder = root / f"speaker{i % 4}" / f"session{(i // 4) % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        frames = struct.pack("<h", i % 32768) + tones[i % 8][2:]
        with wave.open(str(folder / f"clip{i:05d}.wav"), "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(SAMPLE_RATE)
            writer.writeframes(frames)
    return root


def prompt_row(i: int) -> dict[str, Any]:
    return {"id": f"img{i:05d}", "prompt": f"a catalogue photo of product {i} on a plain white background"}


def write_media_spec(folder: Path, url: str, endpoint: str, inputs: dict[str, Any], *, deployment: str,
                     limits: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                     name: str = "media") -> Path:
    """A job spec whose [input] table is `inputs` (a folder and glob, or a table and its prompt column)."""
    return write_spec(folder, url, endpoint, None, deployment=deployment, inputs=inputs, name=name, params=params,
                      limits={"concurrency": CONCURRENCY, **(limits or {})})


def _transcription_spec(folder: Path, url: str, audio: Path, rpm: int | None = None) -> Path:
    return write_media_spec(folder, url, "transcription", {"path": str(audio), "glob": GLOB},
                            deployment=AUDIO_DEPLOYMENT, limits={"requests_per_minute": rpm},
                            params={"response_format": "json"}, name="transcribe")


def _images_spec(folder: Path, url: str, prompts: Path, rpm: int | None = None) -> Path:
    return write_media_spec(folder, url, "images", {"path": str(prompts), "id": "id", "prompt": "prompt"},
                            deployment=IMAGE_DEPLOYMENT, limits={"requests_per_minute": rpm},
                            params={"n": 1, "size": IMAGE_SIZE, "response_format": "b64_json"}, name="images")


# ---------------------------------------------------------------- the openai SDK reference scripts

# Self-contained scripts, run with `python -c`: importing anything from `bench` would load our
# pipeline (pyarrow and all) into the reference's process and into its peak RSS.
SDK_TRANSCRIBE = """
import asyncio, json, sys
from pathlib import Path
from openai import AsyncAzureOpenAI

args = json.loads(sys.argv[1])
root = Path(args["folder"])
paths = sorted(root.rglob("*.wav"))

async def main():
    client = AsyncAzureOpenAI(azure_endpoint=args["url"], api_key="k", api_version=args["api_version"])
    gate = asyncio.Semaphore(args["concurrency"])

    async def one(path):
        async with gate:
            with open(path, "rb") as audio:
                answer = await client.audio.transcriptions.create(model=args["deployment"], file=audio)
        return {"id": path.relative_to(root).as_posix(), "text": answer.text}

    rows = await asyncio.gather(*(one(path) for path in paths))
    await client.close()
    return rows

rows = asyncio.run(main())
Path(args["out"]).write_text("".join(json.dumps(row) + "\\n" for row in rows))
"""

SDK_IMAGES = """
import asyncio, base64, json, sys
from pathlib import Path
from openai import AsyncAzureOpenAI

args = json.loads(sys.argv[1])
rows = [json.loads(line) for line in Path(args["prompts"]).read_text().splitlines() if line]
images = Path(args["out"])
images.mkdir(parents=True, exist_ok=True)

async def main():
    client = AsyncAzureOpenAI(azure_endpoint=args["url"], api_key="k", api_version=args["api_version"])
    gate = asyncio.Semaphore(args["concurrency"])

    async def one(row):
        async with gate:
            answer = await client.images.generate(model=args["deployment"], prompt=row["prompt"], n=1,
                                                  size=args["size"], response_format="b64_json")
        (images / (row["id"] + ".png")).write_bytes(base64.b64decode(answer.data[0].b64_json))

    await asyncio.gather(*(one(row) for row in rows))
    await client.close()

asyncio.run(main())
"""


def _sdk_child(script: str, **args: Any) -> ChildRun:
    payload = json.dumps({"api_version": clients.API_VERSION, "concurrency": CONCURRENCY, **args})
    return run_child([sys.executable, "-c", script, payload], timeout_s=CHILD_TIMEOUT_S)


def _ours_child(spec: Path) -> ChildRun:
    return run_child([sys.executable, "-m", "pipeline", "run", str(spec), "-q"], timeout_s=CHILD_TIMEOUT_S)


# ---------------------------------------------------------------- runs


@dataclass
class Seen:
    """One client's run against a freshly reset emulator."""

    run: ChildRun
    items: int  # inputs given
    done: int  # distinct result rows (ours) or result lines / files (the SDK)
    steady: float | None  # arrivals per second, middle 80%
    requests: int
    throttled: int
    emulator_cpu_s: float  # what the emulator's process spent serving this run

    @property
    def rate(self) -> float:
        return self.done / self.run.wall_s if self.run.wall_s > 0 else 0.0


def _reset(emulator: Emulator) -> float:
    """Forget the emulator's stats and quota windows; its CPU seconds so far."""
    emulator.reset()
    return emulator.cpu_seconds()


def _seen(emulator: Emulator, run: ChildRun, items: int, done: int, emulator_cpu: float) -> Seen:
    stats = emulator.stats()
    return Seen(run, items, done, steady_rate(stats["admitted_times"]), stats["requests"],
                stats["by_status"].get("429", 0), emulator.cpu_seconds() - emulator_cpu)


def _log(who: str, seen: Seen) -> None:
    run = seen.run
    log(f"  media {who}: exit {run.exit_code}, {seen.done}/{seen.items} in {run.wall_s:.2f} s wall "
        f"({seen.rate:.3g}/s; steady {seen.steady or 0:.3g}/s), cpu {run.cpu_s:.2f} s, emulator cpu "
        f"{seen.emulator_cpu_s:.2f} s, peak RSS {run.peak_rss_mb:.0f} MB, {seen.requests} requests, "
        f"{seen.throttled} x 429")


def _result_ids(out: Path) -> int:
    """Distinct ids in the job's results dataset (0 if there is none)."""
    results = out / "results"
    if not results.is_dir() or not any(results.glob("*.parquet")):
        return 0
    table = ds.dataset(results, format="parquet").to_table(columns=["id"])
    return len(set(table.column("id").to_pylist()))


def _ours(emulator: Emulator, work: Path, spec_for: SpecWriter, source: Path, items: int, label: str,
          rpm: int | None = None) -> Seen:
    """`python -m pipeline run` in a child process against a freshly reset emulator."""
    emulator_cpu = _reset(emulator)
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        run = _ours_child(spec_for(folder, emulator.url, source, rpm))
        done = _result_ids(folder / "out")
        if label.startswith("images"):
            files = len(list((folder / "out" / "images").glob("*.png")))
            done = min(done, files)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seen = _seen(emulator, run, items, done, emulator_cpu)
    _log(f"{label} ours{f' at RPM {rpm}' if rpm else ''}", seen)
    return seen


def _sdk_transcribe(emulator: Emulator, work: Path, audio: Path, items: int) -> Seen:
    emulator_cpu = _reset(emulator)
    out = work / "sdk-transcripts.jsonl"
    run = _sdk_child(SDK_TRANSCRIBE, url=emulator.url, deployment=AUDIO_DEPLOYMENT, folder=str(audio), out=str(out))
    done = len({json.loads(line)["id"] for line in out.read_text().splitlines() if line}) if out.exists() else 0
    out.unlink(missing_ok=True)
    seen = _seen(emulator, run, items, done, emulator_cpu)
    _log("transcription openai SDK", seen)
    return seen


def _sdk_images(emulator: Emulator, work: Path, prompts: Path, items: int) -> Seen:
    emulator_cpu = _reset(emulator)
    out = Path(tempfile.mkdtemp(dir=work))
    try:
        run = _sdk_child(SDK_IMAGES, url=emulator.url, deployment=IMAGE_DEPLOYMENT, prompts=str(prompts),
                         out=str(out), size=IMAGE_SIZE)
        done = len(list(out.glob("*.png")))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    seen = _seen(emulator, run, items, done, emulator_cpu)
    _log("images openai SDK", seen)
    return seen


# ---------------------------------------------------------------- figures


def _best(runs: list[Seen]) -> Seen:
    return max(runs, key=lambda seen: seen.rate)


def _throughput_figures(kind: str, unit: str, ours_runs: list[Seen], sdk_runs: list[Seen],
                        least: float | None) -> list[Figure]:
    """`least`: the ratio to the openai SDK held as a target (None: info only)."""
    ours, sdk = _best(ours_runs), _best(sdk_runs)
    label = f"{kind}, {ours.items:,} {'files' if kind == 'transcription' else 'prompts'}"
    whole = ours.rate / sdk.rate if sdk.rate else None
    steady = ours.steady / sdk.steady if ours.steady and sdk.steady else None
    setup = (f"best of {len(ours_runs)}; concurrency {CONCURRENCY}, emulator latency {LATENCY_MS:g} ms, no quota; "
             f"both clients in child processes (wall includes start-up): ours {ours.run.wall_s:.2f} s, cpu "
             f"{ours.run.cpu_s:.2f} s (emulator {ours.emulator_cpu_s:.2f} s); openai SDK {sdk.run.wall_s:.2f} s, "
             f"cpu {sdk.run.cpu_s:.2f} s (emulator {sdk.emulator_cpu_s:.2f} s)")
    complete = all(seen.done == seen.items and seen.run.exit_code == 0 for seen in ours_runs)
    what = "result rows" if kind == "transcription" else "result rows with their PNG files"
    return [
        Figure(NAME, f"{label}: {unit}, whole run", ours.rate, unit, sdk.rate, "openai SDK", whole,
               "info" if least is None else f">= {least:g}x openai",
               None if least is None else whole is not None and whole >= least, setup),
        Figure(NAME, f"{label}: {unit}, steady (middle 80%)", ours.steady or 0.0, unit, sdk.steady,
               "openai SDK", steady, "info", None),
        Figure(NAME, f"{label}: {what}", min(seen.done for seen in ours_runs), "rows", ours.items, "inputs",
               min(seen.done for seen in ours_runs) / max(1, ours.items), "all, once each", complete,
               f"every run: exit {[seen.run.exit_code for seen in ours_runs]}; the openai SDK script returned "
               f"{[seen.done for seen in sdk_runs]} of {sdk.items}"),
    ]


def _memory_figures(small: Seen, large_runs: list[Seen], sdk_runs: list[Seen]) -> list[Figure]:
    """The large folder's highest peak over its rounds against the small folder's."""
    large = max(large_runs, key=lambda seen: seen.run.peak_rss_mb)
    sdk_peak = max(seen.run.peak_rss_mb for seen in sdk_runs)
    growth = large.run.peak_rss_mb / small.run.peak_rss_mb if small.run.peak_rss_mb else None
    ok_small = small.run.exit_code == 0 and small.run.peak_rss_mb < TARGET_MB
    ok_large = all(seen.run.exit_code == 0 for seen in large_runs) and large.run.peak_rss_mb < TARGET_MB
    return [
        Figure(NAME, f"transcription: peak RSS, {small.items:,} files", small.run.peak_rss_mb, "MB", None, "", None,
               f"< {TARGET_MB:g} MB", ok_small, f"{small.run.wall_s:.1f} s wall"),
        Figure(NAME, f"transcription: peak RSS, {large.items:,} files", large.run.peak_rss_mb, "MB",
               small.run.peak_rss_mb, f"{small.items:,}-file run", growth,
               f"< {TARGET_MB:g} MB and <= {TARGET_GROWTH:.2f}x", ok_large and growth is not None
               and growth <= TARGET_GROWTH,
               f"highest of {len(large_runs)}; the openai SDK script on the same files: {sdk_peak:.0f} MB"),
    ]


def _quota_figures(kind: str, seen: Seen) -> list[Figure]:
    quota = QUOTA_RPM / 60
    steady = seen.steady or 0.0
    share = seen.throttled / max(1, seen.requests)
    case = f"{kind} at RPM {QUOTA_RPM} (1 s windows)"
    setup = (f"{seen.done}/{seen.items} in {seen.run.wall_s:.1f} s (child process, start-up included); "
             f"spec requests_per_minute = {QUOTA_RPM}, concurrency {CONCURRENCY}")
    return [
        Figure(NAME, f"{case}: throughput, steady (middle 80%)", steady, "req/s", quota, "quota rate",
               steady / quota, f">= {MIN_QUOTA_RATIO:.2f}", steady / quota >= MIN_QUOTA_RATIO, setup),
        Figure(NAME, f"{case}: throughput, whole run", seen.rate, "req/s", quota, "quota rate", seen.rate / quota,
               "info", None),
        Figure(NAME, f"{case}: share of 429s", share * 100, "%", None, "", None, f"< {MAX_429_SHARE:.0%}",
               share < MAX_429_SHARE, f"{seen.throttled} of {seen.requests} requests"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    small_n, large_n = (100, 400) if quick else (250, 1000)
    images_n = 100 if quick else 500
    rounds = 1 if quick else 2
    quota_n = round(QUOTA_RPM / 60 * (15 if quick else 30))
    root = Path(tempfile.mkdtemp(dir=work))
    figures: list[Figure] = []
    try:
        small_audio = write_audio_folder(root / "audio-small", small_n)
        large_audio = write_audio_folder(root / "audio-large", large_n)
        quota_audio = write_audio_folder(root / "audio-quota", quota_n)
        prompts = write_jsonl(root / "prompts.jsonl", images_n, prompt_row)
        quota_prompts = write_jsonl(root / "prompts-quota.jsonl", quota_n, prompt_row)
        log(f"  media inputs: {small_n} + {large_n} + {quota_n} WAV files, {images_n} + {quota_n} prompts")
        with Emulator() as emulator:
            emulator.configure(rpm=None, tpm=None, latency_ms=LATENCY_MS, image_size_px=IMAGE_PX)
            small = _ours(emulator, work, _transcription_spec, small_audio, small_n, "transcription")
            clients_runs: dict[str, Callable[[], Seen]] = {
                "audio ours": lambda: _ours(emulator, work, _transcription_spec, large_audio, large_n, "transcription"),
                "audio sdk": lambda: _sdk_transcribe(emulator, work, large_audio, large_n),
                "images ours": lambda: _ours(emulator, work, _images_spec, prompts, images_n, "images"),
                "images sdk": lambda: _sdk_images(emulator, work, prompts, images_n),
            }
            taken: dict[str, list[Seen]] = {name: [] for name in clients_runs}
            for number in range(rounds):
                for pair in (("audio ours", "audio sdk"), ("images ours", "images sdk")):
                    for name in pair if number % 2 == 0 else reversed(pair):  # alternate who goes first
                        taken[name].append(clients_runs[name]())
            figures += _throughput_figures("transcription", "files/s", taken["audio ours"], taken["audio sdk"], 1.0)
            figures += _memory_figures(small, taken["audio ours"], taken["audio sdk"])
            # Info only: ours writes each PNG durably (temp, fsync, rename) inside its worker slot, the
            # script writes plain files; at 20 ms latency that few ms per image shows, at a real
            # service's seconds per image it does not.
            figures += _throughput_figures("images", "images/s", taken["images ours"], taken["images sdk"], None)

            emulator.configure(rpm=QUOTA_RPM, window_s=1.0)
            audio_quota = _ours(emulator, work, _transcription_spec, quota_audio, quota_n, "transcription", QUOTA_RPM)
            figures += _quota_figures("transcription", audio_quota)
            images_quota = _ours(emulator, work, _images_spec, quota_prompts, quota_n, "images", QUOTA_RPM)
            figures += _quota_figures("images", images_quota)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return figures
