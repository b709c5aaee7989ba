"""Chaos: every transient fault at once (5xx, drops, hangs past the timeout, cut bodies, 429 bursts with
and without retry-after, slow answers). Every row must end in results exactly once, none in failures,
in bounded time; rows with a permanent error go to failures and nothing else does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.server import EmulatorThread
from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..integration.conftest import corpus, write_job, write_rows
from .conftest import assert_exactly_once, failure_records

# ~26% of requests fault; with 10 attempts a request exhausts them with odds of 0.26**10 ~ 1e-6.
CHAOS: dict[str, Any] = {
    "error_rate": 0.08, "drop_rate": 0.04, "hang_rate": 0.04, "hang_s": 1.5, "truncate_rate": 0.04,
    "burst429_rate": 0.06, "latency_ms": 15, "seed": 7,
}
LIMITS: dict[str, Any] = {"max_attempts": 10, "timeout_s": 0.5, "max_retry_wait_s": 0.3, "concurrency": 8}
FAULTS_EXPECTED = ("500", "503", "drop", "hang", "truncate", "429", "429bare")
DEADLINE_S = 30


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
    rows = corpus(600)
    code, took = chaos_run(tmp_path, emulator, "embeddings", rows, limits={**LIMITS, "batch_size": 4})
    out = tmp_path / "out"
    assert code == 0, failure_records(out)[:3]
    assert_exactly_once(out, [r["id"] for r in rows])
    assert failure_records(out) == []
    assert_all_faults_seen(emulator)
    assert took < DEADLINE_S


def test_chat_streaming_under_chaos(tmp_path: Path, emulator: EmulatorThread) -> None:
    rows = corpus(300, prefix="question")
    code, took = chaos_run(tmp_path, emulator, "chat", rows, inputs={"prompt": "text"},
                           service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 12, "stream": True},
                           limits=LIMITS)
    out = tmp_path / "out"
    assert code == 0, failure_records(out)[:3]
    assert_exactly_once(out, [r["id"] for r in rows])
    assert failure_records(out) == []
    assert_all_faults_seen(emulator)
    assert took < DEADLINE_S


@pytest.mark.parametrize("endpoint", ["embeddings", "chat"])
def test_permanent_errors_under_chaos_fail_alone(tmp_path: Path, emulator: EmulatorThread, endpoint: str) -> None:
    rows = corpus(120)
    doomed = {"r00017": "[[fault:400:always]]", "r00063": "[[fault:422:always]]", "r00101": "[[fault:404:always]]"}
    for row in rows:
        row["text"] += f" {doomed.get(row['id'], '')}"
    job: dict[str, Any] = {"limits": {**LIMITS, "batch_size": 1}}
    if endpoint == "chat":
        job.update(inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 8})
    code, took = chaos_run(tmp_path, emulator, endpoint, rows, **job)
    out = tmp_path / "out"
    assert code == 1
    failures = {f["id"]: f for f in failure_records(out)}
    assert set(failures) == set(doomed)
    assert {f["status"] for f in failures.values()} == {400, 422, 404}
    assert all(f["attempts"] == 1 for f in failures.values())  # permanent: never retried
    assert_exactly_once(out, [r["id"] for r in rows if r["id"] not in doomed])
    assert took < DEADLINE_S
