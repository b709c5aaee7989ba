"""Chaos: every transient fault at once (5xx, drops, hangs past the timeout, cut bodies, 429 bursts with
and without retry-after, slow answers). Every row must end in results exactly once, none in failures,
in bounded time; rows with a permanent error go to failures and nothing else does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.emulator.server import EmulatorThread
from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..integration.conftest import corpus, write_job, write_rows
from .conftest import assert_exactly_once, failure_records

# ~22% of requests fault; with 10 attempts a request exhausts them with odds of 0.22**10 ~ 3e-7.
# The 429s come in the run's first rows, where they hurt most: the job states no limits, so the
# pacer learns a ceiling from them and must climb back while the service shows room (a ceiling
# learned in the first milliseconds once made a 5 s run take 110 s).
CHAOS: dict[str, Any] = {
    "error_rate": 0.08, "drop_rate": 0.05, "hang_rate": 0.04, "hang_s": 1.5, "truncate_rate": 0.05,
    "burst429_rate": 0.0, "latency_ms": 15, "seed": 7,
}
LIMITS: dict[str, Any] = {"max_attempts": 10, "timeout_s": 0.5, "max_retry_wait_s": 0.3, "concurrency": 8}
FAULTS_EXPECTED = ("500", "503", "drop", "hang", "truncate", "429", "429bare")


def bursts_of_429() -> dict[str, str]:
    """Early on, a burst of 429s with retry-after (-ms: 50) and one without any retry header. A
    marker counts per exact text, so the burst is :1 and :2 on rows five apart (two embeddings batches)."""
    return {"r00003": "[[fault:429:1]]", "r00008": "[[fault:429:2]]",
            "r00005": "[[fault:429bare:1]]"}


DOOMED = {"r00017": "[[fault:400:always]]", "r00063": "[[fault:422:always]]", "r00101": "BLOCKME"}
DEADLINE_S = 25


def chaos_rows(n: int, prefix: str, marks: dict[str, str]) -> list[dict[str, Any]]:
    rows = corpus(n, prefix)
    for row in rows:
        row["text"] += f" {marks.get(row['id'], '')}"
    return rows


def chaos_run(tmp_path: Path, emulator: EmulatorThread, endpoint: str, rows: list[dict[str, Any]],
              **job: Any) -> tuple[int, float]:
    emulator.configure(**CHAOS)
    spec = write_job(tmp_path, emulator.url, endpoint, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     output={"flush_rows": 40, "flush_seconds": 0.3}, **job)
    started = time.monotonic()
    result = run_job(load_spec(spec))
    return result.exit_code, time.monotonic() - started


def assert_all_faults_seen(emulator: EmulatorThread) -> None:
    faults = emulator.stats()["faults"]
    missing = [kind for kind in FAULTS_EXPECTED if not faults.get(kind)]
    assert not missing, f"the chaos run never injected {missing}: {faults}"


def test_embeddings_batched_under_chaos(tmp_path: Path, emulator: EmulatorThread) -> None:
    rows = chaos_rows(320, "passage", bursts_of_429())
    code, took = chaos_run(tmp_path, emulator, "embeddings", rows, limits={**LIMITS, "batch_size": 4})
    out = tmp_path / "out"
    assert code == 0, failure_records(out)[:3]
    assert_exactly_once(out, [r["id"] for r in rows])
    assert failure_records(out) == []
    assert_all_faults_seen(emulator)
    assert took < DEADLINE_S


def test_chat_streaming_under_chaos(tmp_path: Path, emulator: EmulatorThread) -> None:
    """Rows with a permanent error fail alone, at once; every other row succeeds exactly once."""
    rows = chaos_rows(160, "question", {**bursts_of_429(), **DOOMED})
    code, took = chaos_run(tmp_path, emulator, "chat", rows, inputs={"prompt": "text"},
                           service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 12, "stream": True},
                           limits=LIMITS)
    out = tmp_path / "out"
    assert code == 1
    failures = {f["id"]: f for f in failure_records(out)}
    assert set(failures) == set(DOOMED), [(f["id"], f["message"]) for f in failures.values()][:5]
    assert sorted(f["error_class"] for f in failures.values()) == [
        "BadRequestError", "ContentFilterError", "UnprocessableEntityError"]
    assert all(f["attempts"] == 1 for f in failures.values())  # permanent: never retried
    assert_exactly_once(out, [r["id"] for r in rows if r["id"] not in DOOMED])
    assert_all_faults_seen(emulator)
    assert took < DEADLINE_S
