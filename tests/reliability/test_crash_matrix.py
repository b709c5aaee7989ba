"""kill -9 at exact points (PIPELINE_CRASH_AT, see pipeline/crashpoints.py), then rerun: every id ends in
exactly one closed part, every closed part is readable, no temp file survives, and the work a crash
redoes stays within what was answered but not yet committed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.server import EmulatorThread
from pipeline.endpoints import ENDPOINT_CLASSES
from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..integration.conftest import read_dataset, run_cli, write_job, write_rows
from .conftest import assert_exactly_once, assert_no_duplicates, closed_ids

ROWS = 240
CONCURRENCY = 4
FLUSH_ROWS = 20
DOOMED = ("r00050", "r00170")  # a permanent 400 each: failures/ parts are written and crashed too


@dataclass(frozen=True)
class Case:
    point: str
    visit: int
    marker: dict[str, str] | None = None  # row id -> fault marker appended to its text


CASES = [
    Case("startup", 1),
    Case("runner.added", 40),  # answered and buffered, not committed
    Case("part.written", 3),  # mid-flush: a whole .tmp on disk, not renamed
    Case("part.renamed", 3),  # renamed, folder not yet fsynced
    Case("limiter.hold", 1, {"r00080": "[[fault:429:1]]"}),  # everyone held by a 429's retry-after
]


def rows_for(case: Case) -> list[dict[str, Any]]:
    rows = [{"id": f"r{i:05d}", "text": f"passage {i}"} for i in range(ROWS)]
    marks = {**dict.fromkeys(DOOMED, "[[fault:400:always]]"), **(case.marker or {})}
    for row in rows:
        row["text"] += f" {marks.get(row['id'], '')}"
    return rows


def crash(spec: Path, point: str, visit: int) -> None:
    proc = run_cli("run", str(spec), "-q", env={"PIPELINE_CRASH_AT": f"{point}:{visit}"}, timeout=60)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-2000:])


def answered(emulator: EmulatorThread) -> int:
    """Requests the service answered in full (batch_size 1: one row each)."""
    by_status = emulator.stats()["by_status"]
    return by_status.get("200", 0) + by_status.get("400", 0)


def committed(out: Path) -> int:
    return len(closed_ids(out / "results")) + len(closed_ids(out / "failures"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.point}:{c.visit}")
def test_kill_9_at_a_point_then_resume(tmp_path: Path, emulator: EmulatorThread, case: Case) -> None:
    emulator.configure(latency_ms=10, fault_retry_after_ms=800)
    rows = rows_for(case)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 1, "concurrency": CONCURRENCY},
                     output={"flush_rows": FLUSH_ROWS, "flush_seconds": 0.3})
    out = tmp_path / "out"
    crash(spec, case.point, case.visit)
    assert_no_duplicates(out)
    at_crash, kept = answered(emulator), committed(out)
    expect_after_crash(case, out, at_crash)

    result = run_job(load_spec(spec))
    assert result.exit_code == 1, result.message  # the doomed rows, nothing else
    rate = result.summary["rows_per_s"]
    assert_exactly_once(out, [r["id"] for r in rows if r["id"] not in DOOMED])
    assert sorted(closed_ids(out / "failures")) == sorted(DOOMED)
    assert not (out / "lock").exists()
    redone = answered(emulator) - ROWS
    print(f"\ncrash at {case.point}:{case.visit}: {at_crash} rows answered, {kept} committed, "
          f"{redone} answered again after the rerun (~{rate:.0f} rows/s)")
    assert redone == at_crash - kept
    assert redone <= redo_bound(rate)


def redo_bound(rows_per_s: float) -> float:
    """What a crash can cost: a buffer of flush_rows, what arrives during one 0.1 s flush check and the
    part write (0.3 s allowed), and the rows in flight."""
    return FLUSH_ROWS + rows_per_s * 0.3 + CONCURRENCY


def expect_after_crash(case: Case, out: Path, answered_at_crash: int) -> None:
    """What each point must leave behind."""
    temps = list(out.rglob("*.tmp"))
    if case.point == "startup":
        assert answered_at_crash == 0 and (out / "lock").exists() and not temps
    elif case.point == "part.written":
        assert [t.name.endswith(".parquet.tmp") for t in temps] == [True]
    elif case.point == "limiter.hold":
        assert 0 < committed(out) < ROWS


SIZE = 16


@pytest.mark.skipif("images" not in ENDPOINT_CLASSES, reason="no images endpoint in pipeline/endpoints")
def test_kill_9_while_writing_an_image(tmp_path: Path, emulator: EmulatorThread) -> None:
    emulator.configure(image_size_px=SIZE, latency_ms=10)
    rows = [{"id": f"img-{i:03d}", "prompt": f"a lighthouse in style {i}"} for i in range(40)]
    spec = write_job(tmp_path, emulator.url, "images", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "prompt"}, params={"n": 2, "size": "256x256", "response_format": "b64_json"},
                     service={"deployment": "dall-e-2"}, limits={"concurrency": CONCURRENCY},
                     output={"flush_rows": 5, "flush_seconds": 0.2})
    out = tmp_path / "out"
    crash(spec, "file.written", 15)
    temps = [t.suffixes[-2:] for t in out.rglob("*.tmp")]
    # images being written by the workers; a results part may be mid-write too, since flushes run alongside
    assert [".png", ".tmp"] in temps and all(t in ([".png", ".tmp"], [".parquet", ".tmp"]) for t in temps)
    assert_no_duplicates(out)
    assert run_job(load_spec(spec)).exit_code == 0
    assert_exactly_once(out, [r["id"] for r in rows])
    for record in read_dataset(out / "results"):
        for relative, size, digest in zip(record["paths"], record["bytes"], record["sha256"], strict=True):
            data = (out / relative).read_bytes()
            assert len(data) == size and hashlib.sha256(data).hexdigest() == digest
