"""What every benchmark needs: an emulator in its own process, inputs, job specs, CPU clocks, figures.

The emulator runs as `python -m pipeline emulator` in a separate process so the client's CPU is
measured alone (`resource.getrusage(RUSAGE_SELF)` around an in-process run, or `os.wait4` for a
client run as a subprocess).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 30.0


@dataclass
class Figure:
    """One reported number, its reference from the same run, and the target it is held against."""

    benchmark: str
    case: str
    value: float
    unit: str
    reference: float | None = None
    reference_label: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Emulator:
    """`python -m pipeline emulator` on a free port, in its own process; a context manager."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Emulator:
        args = [sys.executable, "-m", "pipeline", "emulator", "--port", "0"]
        for name, value in self.options.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = _first_line(self.process, STARTUP_TIMEOUT_S)
        if not self.url.startswith("http"):
            self.__exit__()
            raise RuntimeError(f"the emulator did not print its URL (got {self.url!r})")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def configure(self, **fields: Any) -> None:
        self._admin("/_emulator/config", fields)

    def reset(self) -> None:
        self._admin("/_emulator/reset", {})

    def stats(self) -> dict[str, Any]:
        return self._admin("/_emulator/stats")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The process's first stdout line, or "" if none comes within `timeout` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(process.stdout.readline() if process.stdout else ""),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


# ---------------------------------------------------------------- inputs and specs


def write_jsonl(path: Path, count: int, make: Callable[[int], dict[str, Any]]) -> Path:
    """`count` rows made by `make(i)`, written in chunks so a million rows stay cheap."""
    with path.open("w", encoding="utf-8") as handle:
        chunk: list[str] = []
        for i in range(count):
            chunk.append(json.dumps(make(i)))
            if len(chunk) >= 10_000:
                handle.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            handle.write("\n".join(chunk) + "\n")
    return path


def chat_row(i: int) -> dict[str, Any]:
    return {"id": f"q{i:07d}", "text": f"Question {i}: name one prime number."}


def passage_row(i: int) -> dict[str, Any]:
    return {"id": f"p{i:07d}", "text": f"passage {i} about the standard library"}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def write_spec(folder: Path, url: str, endpoint: str, input_path: Path | None, *, deployment: str,
               limits: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
               output: dict[str, Any] | None = None, name: str = "bench",
               inputs: dict[str, Any] | None = None) -> Path:
    """A job spec for a running emulator (provider emulator, base_url = its URL). The [input] table
    reads `input_path`'s `text` column, unless `inputs` gives the whole table (a folder and glob)."""
    sections: dict[str, dict[str, Any]] = {
        "input": inputs or {"path": str(input_path), "id": "id",
                            ("text" if endpoint == "embeddings" else "prompt"): "text"},
        "output": {"path": str(folder / "out"), **(output or {})},
        "service": {"provider": "emulator", "base_url": url, "deployment": deployment},
        "limits": {"max_attempts": 6, "timeout_s": 60, **(limits or {})},
        "params": params or {},
    }
    lines = [f'name = "{name}"', f'endpoint = "{endpoint}"']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]
    spec = folder / f"{name}.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


# ---------------------------------------------------------------- clocks


def cpu_now() -> float:
    """CPU seconds (user + system, all threads) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Measured:
    wall_s: float
    cpu_s: float


class measure:
    """Wall and CPU time of this process over a `with` block."""

    def __enter__(self) -> Measured:
        self.result = Measured(0.0, 0.0)
        self._wall, self._cpu = time.perf_counter(), cpu_now()
        return self.result

    def __exit__(self, *exc: object) -> None:
        self.result.wall_s = time.perf_counter() - self._wall
        self.result.cpu_s = cpu_now() - self._cpu


@dataclass
class ChildRun:
    exit_code: int
    wall_s: float
    cpu_s: float  # from os.wait4: the child's own user + system time
    peak_rss_mb: float  # VmHWM, the kernel's high-water mark of the child's own address space


def _peak_rss(pid: int) -> int:
    """Bytes: VmHWM from /proc (Linux), else the current RSS from psutil.

    Not wait4's ru_maxrss: Linux carries the parent's RSS at fork into the child's maxrss
    across exec, so a child of a big benchmark process would report the parent's size.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(psutil.Process(pid).memory_info().rss)


def run_child(args: list[str], timeout_s: float, cwd: Path = ROOT) -> ChildRun:
    """Run a command to its end (killed after `timeout_s`); its CPU and its peak RSS, polled every 50 ms."""
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        # The high-water mark only grows, so the last read before exit holds the run's peak.
        while not done.wait(0.05):
            try:
                peak[0] = max(peak[0], _peak_rss(process.pid))
            except (psutil.Error, ValueError):
                return

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    killer = threading.Timer(timeout_s, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
        done.set()
        poller.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.stderr is not None:
        tail = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
        if process.returncode != 0 and tail:
            log(f"  (exit {process.returncode}) {tail[-500:]}")
    return ChildRun(process.returncode, time.perf_counter() - started, usage.ru_utime + usage.ru_stime,
                    peak[0] / 2**20)


def steady_rate(times: list[float], share: float = 0.8) -> float | None:
    """Arrivals per second over the middle `share` of the arrivals (drops the ramp and the tail)."""
    if len(times) < 10:
        return None
    ordered = sorted(times)
    cut = int(len(ordered) * (1 - share) / 2)
    low, high = cut, len(ordered) - 1 - cut
    span = ordered[high] - ordered[low]
    return (high - low) / span if span > 0 else None


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
