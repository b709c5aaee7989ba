"""Whole runs against a server that misbehaves: the run neither leaks the key, nor eats its memory,
nor loses what the server said; each bad answer costs its row and the run goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..servers.misbehaving import (
    MiB,
    MisbehavingServer,
    by_body,
    chat_answer,
    chunk_event,
    error_event,
    huge_stream,
    redirect,
    sse,
)
from .conftest import read_dataset, run_cli, write_job, write_rows

KEY = "hostile-test-key-5f3a"
SERVICES = {
    "azure": ({"provider": "azure", "api_version": "2024-10-21", "deployment": "gpt-4o-mini", "auth": "api-key"},
              "AZURE_OPENAI_API_KEY"),
    "openai": ({"provider": "openai", "model": "gpt-4o-mini", "deployment": None, "auth": "api-key"},
               "OPENAI_API_KEY"),
}


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as running:
        yield running


def chat_job(tmp_path: Path, base: str, rows: list[dict[str, Any]], provider: str = "openai",
             limits: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> Path:
    service, _ = SERVICES[provider]
    return write_job(tmp_path, base, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={**service, "base_url": base},
                     limits={"max_attempts": 3, "max_retry_wait_s": 0.05, **(limits or {})},
                     params={"max_tokens": 10, **(params or {})})


def outcome(tmp_path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    results = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    failures = {r["id"]: r for r in read_dataset(tmp_path / "out" / "failures")}
    return results, failures


@pytest.mark.parametrize("provider", ["azure", "openai"])
def test_redirect_to_another_origin_never_carries_the_key(tmp_path: Path, monkeypatch, provider: str) -> None:
    monkeypatch.setenv(SERVICES[provider][1], KEY)
    with MisbehavingServer() as service, MisbehavingServer() as other:
        other.script("moved", chat_answer("stolen"))
        base = service.script("old", redirect(f"{other.url}/moved/chat/completions"))
        result = run_job(load_spec(chat_job(tmp_path, base, [{"id": "a", "text": "hello"}], provider)))
        stolen = other.seen()
        sent = service.seen()
    assert sent and (sent[0].headers.get("api-key") == KEY or sent[0].headers.get("authorization") == f"Bearer {KEY}")
    assert stolen == [], [seen.headers for seen in stolen]
    assert result.exit_code == 1, result.message
    results, failures = outcome(tmp_path)
    assert results == {}
    failure = failures["a"]
    assert failure["status"] == 307 and failure["error_code"] == "redirect" and failure["attempts"] == 1
    assert f"redirected to {other.url}" in failure["message"]
    assert "refusing to send credentials to another origin" in failure["message"]


class PeakRSS:
    """The process's peak resident memory while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.baseline = self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)


def test_huge_answer_fails_its_row_without_the_memory(tmp_path: Path, server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    base = server.script("v1", by_body({"please be huge": huge_stream(200 * MiB)}, chat_answer("fine")))
    rows = [{"id": f"r{i}", "text": f"question {i}"} for i in range(6)] + [{"id": "huge", "text": "please be huge"}]
    with PeakRSS() as memory:
        result = run_job(load_spec(chat_job(tmp_path, base, rows)))
    grown_mb = (memory.peak - memory.baseline) / MiB
    assert result.exit_code == 1, result.message
    results, failures = outcome(tmp_path)
    assert set(results) == {f"r{i}" for i in range(6)}
    failure = failures["huge"]
    assert failure["error_code"] == "answer_too_large" and failure["attempts"] == 1
    assert "16 MiB cap" in failure["message"] and "[limits] max_answer_bytes" in failure["message"]
    assert grown_mb < 50, f"RSS grew by {grown_mb:.0f} MB"
    print(f"peak RSS growth {grown_mb:.1f} MB")


def test_max_answer_bytes_from_the_spec(tmp_path: Path, server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    base = server.script("v1", by_body({"long": chat_answer("w" * 300_000)}, chat_answer("short")))
    rows = [{"id": "short", "text": "brief"}, {"id": "long", "text": "long one"}]
    result = run_job(load_spec(chat_job(tmp_path, base, rows, limits={"max_answer_bytes": 100_000})))
    assert result.exit_code == 1
    results, failures = outcome(tmp_path)
    assert set(results) == {"short"} and "98 KiB cap" in failures["long"]["message"]


def test_max_answer_bytes_is_validated(tmp_path: Path) -> None:
    spec = chat_job(tmp_path, "http://127.0.0.1:9", [{"id": "a", "text": "x"}], limits={"max_answer_bytes": 10})
    proc = run_cli("validate", str(spec), env={"OPENAI_API_KEY": KEY})
    assert proc.returncode == 2 and "max_answer_bytes" in proc.stderr and ">= 1024" in proc.stderr


@pytest.mark.parametrize(("event", "status", "code", "attempts"), [
    (error_event("context_length_exceeded", "This model's maximum context length is 128000 tokens",
                 "invalid_request_error"), 400, "context_length_exceeded", 1),
    (error_event(None, "The server had an error while processing your request", "server_error", named=True),
     500, "server_error", 3),
])
def test_error_event_in_a_stream_reaches_the_failure_row(tmp_path: Path, server, monkeypatch, event: bytes,
                                                         status: int, code: str | None, attempts: int) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    base = server.script("v1", by_body({"doomed": sse(chunk_event("half an "), event)},
                                       sse(chunk_event("whole answer", "stop"))))
    rows = [{"id": "ok", "text": "fine"}, {"id": "doomed", "text": "doomed"}]
    result = run_job(load_spec(chat_job(tmp_path, base, rows, params={"stream": True})))
    assert result.exit_code == 1
    results, failures = outcome(tmp_path)
    assert set(results) == {"ok"}
    failure = failures["doomed"]
    assert failure["status"] == status and failure["error_code"] == code and failure["attempts"] == attempts
    assert failure["stage"] == "request"
    assert failure["message"].startswith(("This model's maximum", "The server had an error"))
    assert len([s for s in server.seen("v1") if b"doomed" in s.body]) == attempts


def test_invalid_utf8_in_a_stream_is_retried_then_fails_cleanly(tmp_path: Path, server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    broken = sse(chunk_event("fine so far"), b'data: {"choices": [{"delta": {"content": "\xc3\x28"}}]}\n\n')
    base = server.script("v1", by_body({"mangled": broken}, sse(chunk_event("whole answer", "stop"))))
    rows = [{"id": "ok", "text": "fine"}, {"id": "mangled", "text": "mangled"}]
    started = time.monotonic()
    result = run_job(load_spec(chat_job(tmp_path, base, rows, params={"stream": True})))
    assert result.exit_code == 1 and time.monotonic() - started < 30
    results, failures = outcome(tmp_path)
    assert set(results) == {"ok"}
    failure = failures["mangled"]
    assert failure["stage"] == "request" and failure["error_class"] == "APIConnectionError"
    assert failure["attempts"] == 3 and "UTF-8" in failure["message"]
