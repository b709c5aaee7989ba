"""Resource faults: an output path that cannot be a folder, a disk that fills up or turns read-only
mid-run, an input deleted or truncated mid-run. Each ends with one clear line and a documented exit
code, leaves no part a resume would trust wrongly, and resumes exactly once when the cause is fixed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.emulator.server import EmulatorThread
from pipeline.endpoints import ENDPOINT_CLASSES

from ..integration.conftest import corpus, run_cli, start_cli, write_job, write_rows
from .conftest import BAD_DATA, assert_exactly_once, assert_no_duplicates

EXIT_OUTPUT = 5  # README, "Exit codes": the output could not be written; nothing partial kept


class Disk:
    """A small tmpfs mounted for one test (tests run as root); resized or made read-only at will."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); needs root")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    small = Disk(tmp_path / "disk")
    yield small
    small.unmount()


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_output_path_under_a_file_exits_5_before_any_request(tmp_path: Path, emulator: EmulatorThread) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(10)),
                     output={"path": str(tmp_path / "blocker" / "out")})
    proc = run_cli("run", str(spec), "-q")
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert "not writable" in one_error_line(proc.stderr)
    assert emulator.stats()["requests"] == 0


def big_vectors_job(tmp_path: Path, url: str, out: Path, rows: int) -> Path:
    """3072-float vectors (12 KB a row, incompressible): 400 rows overflow a 3 MB disk, in parts of ~20 rows."""
    return write_job(tmp_path, url, input_path=write_rows(tmp_path / "in.jsonl", corpus(rows)),
                     service={"deployment": "text-embedding-3-large"}, limits={"batch_size": 4, "concurrency": 2},
                     output={"path": str(out), "flush_rows": 20, "flush_seconds": 0.3})


def test_disk_full_mid_run_then_resume_on_a_bigger_disk(tmp_path: Path, emulator: EmulatorThread,
                                                        disk: Disk) -> None:
    disk.mount("3m")
    out = disk.path / "out"
    emulator.configure(latency_ms=20)  # parts of about flush_rows rows, not whatever a 0.1 s tick gathered
    spec = big_vectors_job(tmp_path, emulator.url, out, 400)
    proc = run_cli("run", str(spec), "-q")
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert "No space left on device" in one_error_line(proc.stderr)
    kept = assert_no_duplicates(out)
    assert 0 < len(kept) < 400 and not list(out.rglob("*.tmp"))
    disk.remount("size=64m")
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(out, [r["id"] for r in corpus(400)])


def test_disk_turns_read_only_mid_run_then_resume(tmp_path: Path, emulator: EmulatorThread, disk: Disk) -> None:
    disk.mount("64m")
    out = disk.path / "out"
    emulator.configure(latency_ms=40)
    spec = big_vectors_job(tmp_path, emulator.url, out, 400)
    proc = start_cli("run", str(spec), "-q")
    wait_for(lambda: any((out / "results").glob("part-*.parquet")))
    disk.remount("ro")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OUTPUT, stderr
    assert "Read-only file system" in one_error_line(stderr)
    assert_no_duplicates(out)
    disk.remount("rw")
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(out, [r["id"] for r in corpus(400)])


def slow_job(tmp_path: Path, emulator: EmulatorThread, rows: int) -> tuple[Path, Path]:
    emulator.configure(latency_ms=20)
    source = write_rows(tmp_path / "in.jsonl", corpus(rows))
    spec = write_job(tmp_path, emulator.url, input_path=source, limits={"batch_size": 4, "concurrency": 1},
                     output={"flush_rows": 20, "flush_seconds": 0.2})
    return spec, source


def test_input_deleted_mid_run(tmp_path: Path, emulator: EmulatorThread) -> None:
    """The open input is read to its end; a rerun without it says so; with it back, nothing is redone."""
    spec, source = slow_job(tmp_path, emulator, 160)
    saved = source.read_bytes()
    proc = start_cli("run", str(spec), "-q")
    wait_for(lambda: any((tmp_path / "out" / "results").glob("part-*.parquet")))
    source.unlink()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert_exactly_once(tmp_path / "out", [r["id"] for r in corpus(160)])
    missing = run_cli("run", str(spec), "-q")
    assert missing.returncode == 2 and "input not found" in one_error_line(missing.stderr)
    source.write_bytes(saved)
    requests = emulator.stats()["requests"]
    assert run_cli("run", str(spec), "-q").returncode == 0
    assert emulator.stats()["requests"] == requests


def test_input_truncated_mid_run(tmp_path: Path, emulator: EmulatorThread) -> None:
    """Rows that vanish under a running job are reported, not silently dropped; restored, they resume."""
    rows = 2000
    spec, source = slow_job(tmp_path, emulator, rows)
    saved = source.read_bytes()
    proc = start_cli("run", str(spec), "-q")
    wait_for(lambda: any((tmp_path / "out" / "results").glob("part-*.parquet")))
    with open(source, "r+b") as handle:
        handle.truncate(len(saved) // 10)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "changed while it was read" in one_error_line(stderr)
    assert_no_duplicates(tmp_path / "out")
    source.write_bytes(saved)
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(tmp_path / "out", [r["id"] for r in corpus(rows)])


@pytest.mark.skipif("transcription" not in ENDPOINT_CLASSES, reason="no transcription endpoint in pipeline/endpoints")
def test_input_folder_removed_mid_run(tmp_path: Path, emulator: EmulatorThread) -> None:
    """A folder source that cannot be listed any more stops the run (it used to leave the workers waiting)."""
    wav = (BAD_DATA / "audio_bad" / "good.wav").read_bytes()
    names = [f"d{i:02d}/a.wav" for i in range(12)]
    for name in names:
        (tmp_path / "audio" / name).parent.mkdir(parents=True)
        (tmp_path / "audio" / name).write_bytes(wav)
    emulator.configure(latency_ms=40)
    spec = write_job(tmp_path, emulator.url, "transcription", input_path=tmp_path / "audio", inputs={},
                     service={"deployment": "whisper"}, limits={"concurrency": 1},
                     output={"flush_rows": 2, "flush_seconds": 0.1})
    proc = start_cli("run", str(spec), "-q")
    wait_for(lambda: any((tmp_path / "out" / "results").glob("part-*.parquet")))
    shutil.rmtree(tmp_path / "audio" / "d11")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2, stderr
    assert "audio" in one_error_line(stderr)
    assert_no_duplicates(tmp_path / "out")
    (tmp_path / "audio" / "d11").mkdir()
    (tmp_path / "audio" / names[-1]).write_bytes(wav)
    emulator.configure(latency_ms=0)
    assert run_cli("run", str(spec), "-q").returncode == 0
    assert_exactly_once(tmp_path / "out", names)
