"""Slow input I/O (issue 13, finding 8): an input whose every read, or every object, takes 50 ms, against a quota.

The inputs sit in "object storage" served by a slow filesystem: pyarrow's LocalFileSystem behind a
FileSystemHandler that waits DELAY_S at every call (opening, looking up, listing) and at every read of a
stream, which returns at most the case's `piece` bytes. It stands in for `pipeline.storage.locate` for the bucket
`slowio` only, so the job specs name `s3://slowio/...` as a user's would and the run goes through the
same code as a real store. Each case runs the same job twice against the same emulator quota (1 s
windows, 20 ms latency), once with the delay and once without; throughput is the emulator's steady
admitted rate (middle 80% of the admitted requests), held against the quota's rate. Target: the slow
input costs nothing, slow / fast >= 0.97.

a. chat from a JSONL object read in 1 KiB pieces (about 16 rows), 50 ms a piece; RPM 1200.
b. transcription of a folder of 200 WAV objects (quick: 80), 50 ms per storage call (a stream read whole
   in one): each file's size and first bytes are checked when its row is prepared (one call), and it is
   read again for every upload (two: open, read); RPM 600.

One reader thread reads the rows, so per-object latency L caps the input at 1/L rows per second (20 at
50 ms): case b's quota (10 req/s) is half of that.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.fs as pafs

from bench import clients
from bench.harness import Emulator, Figure, chat_row, log, steady_rate, write_jsonl, write_spec
from bench.media import write_audio_folder
from pipeline import storage

NAME = "slowio"
BUCKET = "slowio"
DELAY_S = 0.050
CONCURRENCY = 8
LATENCY_MS = 20.0
TARGET_RATIO = 0.97


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    rpm: int
    piece: int | None  # the most bytes one read of a stream returns; None: all that is asked
    seconds: float
    quick_seconds: float


CASES = [
    Case("a. chat, JSONL object, 50 ms per 1 KiB read, RPM 1200", "chat", 1200, 1024, 20, 8),
    Case("b. transcription, folder of WAV objects, 50 ms per call, RPM 600", "transcription", 600, None, 20, 8),
]


class SlowReads(io.RawIOBase):
    """A local file whose every read waits `delay_s` and returns at most `piece` bytes (a slow stream)."""

    def __init__(self, path: str, delay_s: float, piece: int | None) -> None:
        self._file = open(path, "rb")  # noqa: SIM115  # closed with this stream
        self._delay_s, self._piece = delay_s, piece

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        time.sleep(self._delay_s)
        data = self._file.read(min(len(buffer), self._piece or len(buffer)))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class SlowHandler(pafs.FileSystemHandler):
    """LocalFileSystem with DELAY_S per call: an object store far away. Only reading is slowed."""

    def __init__(self, delay_s: float, piece: int | None) -> None:
        self._local = pafs.LocalFileSystem()
        self._delay_s, self._piece = delay_s, piece

    def _wait(self) -> None:
        time.sleep(self._delay_s)

    def get_type_name(self) -> str:
        return "slow-local"

    def equals(self, other: Any) -> bool:
        return other is self

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        self._wait()
        return self._local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        self._wait()
        return self._local.get_file_info(selector)

    def open_input_file(self, path: str) -> pa.NativeFile:
        self._wait()
        return self._local.open_input_file(path)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self._wait()
        return pa.PythonFile(SlowReads(path, self._delay_s, self._piece), mode="r")

    def create_dir(self, path: str, recursive: bool) -> None:
        self._local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("not on a benchmark's store")

    def delete_file(self, path: str) -> None:
        self._local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self._local.copy_file(src, dest)

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return self._local.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return self._local.open_append_stream(path, metadata=metadata)


@contextlib.contextmanager
def slow_bucket(root: Path, delay_s: float, piece: int | None) -> Iterator[None]:
    """`s3://slowio/KEY` is `root/KEY` behind SlowHandler while the block runs; other URIs as usual."""
    filesystem = pafs.PyFileSystem(SlowHandler(delay_s, piece))
    real = storage.locate
    prefix = f"s3://{BUCKET}/"

    def locate(uri: str, env: Any = None) -> storage.Location:
        if not uri.startswith(prefix):
            return real(uri, env)
        return storage.Location(filesystem, str(root / uri[len(prefix):].strip("/")), uri)

    with mock.patch.object(storage, "locate", locate):
        yield


def _rows_for(case: Case, seconds: float) -> int:
    return max(20, round(case.rpm / 60 * seconds))


def _write_spec(case: Case, folder: Path, url: str, count: int) -> Path:
    limits = {"concurrency": CONCURRENCY, "requests_per_minute": case.rpm}
    (folder / "store").mkdir()
    if case.endpoint == "chat":
        write_jsonl(folder / "store" / "in.jsonl", count, chat_row)
        inputs = {"path": f"s3://{BUCKET}/in.jsonl", "id": "id", "prompt": "text"}
        return write_spec(folder, url, "chat", None, deployment="gpt-4o-mini", inputs=inputs, limits=limits,
                          params={"max_tokens": 10}, name="slowio-chat")
    write_audio_folder(folder / "store" / "audio", count)
    return write_spec(folder, url, "transcription", None, deployment="whisper", limits=limits,
                      inputs={"path": f"s3://{BUCKET}/audio", "glob": "**/*.wav"},
                      params={"response_format": "json"}, name="slowio-audio")


def _run_case(emulator: Emulator, case: Case, seconds: float, delay_s: float, work: Path) -> dict[str, Any]:
    emulator.configure(rpm=case.rpm, tpm=None, window_s=1.0, latency_ms=LATENCY_MS)
    emulator.reset()
    count = _rows_for(case, seconds)
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        spec = _write_spec(case, folder, emulator.url, count)
        started = time.perf_counter()
        with slow_bucket(folder / "store", delay_s, case.piece):
            result = clients.run_ours(spec)
        wall_s = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stats = emulator.stats()
    done = int(result.summary["rows_succeeded"])
    throttled = stats["by_status"].get("429", 0)
    log(f"  slowio {case.name}, {delay_s * 1000:.0f} ms: {done}/{count} rows in {wall_s:.1f} s (exit "
        f"{result.exit_code}), {stats['requests']} requests, {throttled} x 429")
    return {"rows": count, "done": done, "wall_s": wall_s, "requests": stats["requests"], "throttled": throttled,
            "steady": steady_rate(stats["admitted_times"]) or 0.0}


def _figures(case: Case, slow: dict[str, Any], fast: dict[str, Any]) -> list[Figure]:
    quota = case.rpm / 60
    ratio = slow["steady"] / fast["steady"] if fast["steady"] else 0.0
    setup = (f"{slow['done']}/{slow['rows']} rows in {slow['wall_s']:.1f} s slow, {fast['wall_s']:.1f} s fast; "
             f"concurrency {CONCURRENCY}")
    share = slow["throttled"] / max(1, slow["requests"])
    return [
        Figure(NAME, f"{case.name}: steady throughput, slow input", slow["steady"], "req/s", fast["steady"],
               "same input, no delay", ratio, f">= {TARGET_RATIO:.2f}", ratio >= TARGET_RATIO, setup),
        Figure(NAME, f"{case.name}: steady throughput / quota, slow input", slow["steady"], "req/s", quota,
               "quota rate", slow["steady"] / quota, "info", None),
        Figure(NAME, f"{case.name}: steady throughput / quota, no delay", fast["steady"], "req/s", quota,
               "quota rate", fast["steady"] / quota, "info", None),
        Figure(NAME, f"{case.name}: share of 429s, slow input", share * 100, "%", None, "", None, "info", None,
               f"{slow['throttled']} of {slow['requests']} requests"),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    figures: list[Figure] = []
    with Emulator() as emulator:
        for case in CASES:
            seconds = case.quick_seconds if quick else case.seconds
            fast = _run_case(emulator, case, seconds, 0.0, work)
            slow = _run_case(emulator, case, seconds, DELAY_S, work)
            figures += _figures(case, slow, fast)
    return figures
