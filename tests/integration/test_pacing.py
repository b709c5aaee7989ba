"""Pacing against an emulator quota evaluated over 1 s windows, and adaptation when the spec is wrong."""

from __future__ import annotations

from pathlib import Path

from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import result_ids, write_job, write_rows


def chat_rows(n: int) -> list[dict]:
    return [{"id": f"q{i}", "text": f"question {i}"} for i in range(n)]


def test_pacing_under_a_matching_quota_earns_no_429(tmp_path: Path, emulator) -> None:
    emulator.configure(rpm=600, window_s=1.0)  # 10 per 1 s window
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", chat_rows(25)),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"},
                     params={"max_tokens": 10}, limits={"requests_per_minute": 600, "concurrency": 16})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0
    stats = emulator.stats()
    assert stats["by_status"].get("429", 0) == 0
    assert len(result_ids(tmp_path / "out")) == 25


def test_token_quota_paced_too(tmp_path: Path, emulator) -> None:
    emulator.configure(tpm=60_000, window_s=1.0)  # 1000 tokens per 1 s window
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", chat_rows(20)),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"},
                     params={"max_tokens": 100}, limits={"tokens_per_minute": 60_000, "concurrency": 16})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0
    assert emulator.stats()["by_status"].get("429", 0) == 0


def test_spec_claiming_twice_the_quota_adapts(tmp_path: Path, emulator) -> None:
    emulator.configure(rpm=600, window_s=1.0)
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", chat_rows(60)),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"},
                     params={"max_tokens": 10}, limits={"requests_per_minute": 1200, "concurrency": 16})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0
    stats = emulator.stats()
    throttled = stats["by_status"].get("429", 0)
    assert throttled < 0.15 * stats["requests"], stats["by_status"]
    assert len(result_ids(tmp_path / "out")) == 60
