"""When the service as a whole cannot take the job, the run stops (exit 3, resumable) instead of failing
rows; when one 429 or one outage is only the service's moment, the rows it cost are sent again by a plain
rerun. Each case runs against a small server that behaves that way (tests/servers/misbehaving.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..servers.misbehaving import Handler, MisbehavingServer, by_body, chat_answer, chat_body, json_answer
from .conftest import read_dataset, run_cli, write_job, write_rows

OPENAI = {"provider": "openai", "model": "gpt-4o-mini", "deployment": None, "auth": "api-key"}


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "stops-test-key")


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as running:
        yield running


def chat_job(tmp_path: Path, base: str, count: int, limits: dict[str, Any] | None = None,
             texts: dict[int, str] | None = None) -> Path:
    rows = [{"id": f"r{i:03d}", "text": (texts or {}).get(i, f"question {i}")} for i in range(count)]
    return write_job(tmp_path, base, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={**OPENAI, "base_url": base},
                     limits={"concurrency": 4, "max_attempts": 3, "max_retry_wait_s": 0.05, **(limits or {})},
                     params={"max_tokens": 5})


def embeddings_job(tmp_path: Path, base: str, count: int, limits: dict[str, Any] | None = None,
                   texts: dict[int, str] | None = None) -> Path:
    rows = [{"id": f"r{i:03d}", "text": (texts or {}).get(i, f"passage {i}")} for i in range(count)]
    return write_job(tmp_path, base, "embeddings", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     service={"provider": "openai", "model": "text-embedding-3-small", "deployment": None,
                              "auth": "api-key", "base_url": base},
                     limits={"concurrency": 2, "max_attempts": 3, "max_retry_wait_s": 0.05, **(limits or {})})


def embeddings_answer() -> Handler:
    """One small float vector per input, as a server that ignores encoding_format answers."""
    async def handle(request: web.Request) -> web.StreamResponse:
        inputs = json.loads(await request.read())["input"]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25, 0.125, 1.0]} for i in range(len(inputs))]
        return web.json_response({"object": "list", "data": data, "model": "m",
                                  "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
    return handle


def slow(handler: Handler, seconds: float = 0.05) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await handler(request)
    return handle


def outcome(tmp_path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    results = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    failures = {r["id"]: r for r in read_dataset(tmp_path / "out" / "failures")}
    return results, failures


def error_body(message: str, code: str | None, type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# ---------------------------------------------------------------------------------- 429s that are not pacing


def test_insufficient_quota_stops_the_job_with_the_services_message(tmp_path: Path, server: MisbehavingServer) -> None:
    billing = "You exceeded your current quota, please check your plan and billing details."
    base = server.script("billing", json_answer(error_body(billing, "insufficient_quota", "insufficient_quota"), 429))
    started = time.monotonic()
    result = run_job(load_spec(chat_job(tmp_path, base, 50)))
    assert result.exit_code == 3, result.message
    assert billing in (result.message or "") and "billing" in (result.message or "")
    assert time.monotonic() - started < 10
    assert len(server.seen("billing")) <= 4  # one attempt per worker, not 300 attempts
    results, failures = outcome(tmp_path)
    assert results == {} and failures == {}  # resumable: nothing is recorded as the rows' fault


def test_a_request_too_large_for_the_quota_fails_its_row_at_once(tmp_path: Path, server: MisbehavingServer) -> None:
    too_large = ("Request too large for gpt-4o-mini in organization org-x on tokens per min (TPM): Limit 1000, "
                 "Requested 5000. The input or output tokens must be reduced in order to run successfully.")
    base = server.script("large", by_body({"ENORMOUS": json_answer(error_body(too_large, "rate_limit_exceeded",
                                                                                "tokens"), 429,
                                                                     {"retry-after": "5"})}, chat_answer()))
    started = time.monotonic()
    result = run_job(load_spec(chat_job(tmp_path, base, 30, {"max_retry_wait_s": 5}, {7: "ENORMOUS"})))
    assert result.exit_code == 1, result.message
    assert time.monotonic() - started < 4  # no 5 s hold of every worker, no 5 s wait for the row itself
    results, failures = outcome(tmp_path)
    assert len(results) == 29 and list(failures) == ["r007"]
    failure = failures["r007"]
    assert failure["error_class"] == "RequestTooLargeError" and failure["attempts"] == 1
    assert sum(b"ENORMOUS" in seen.body for seen in server.seen("large")) == 1


# ------------------------------------------------------------------------------------------ day-long waits


def test_a_service_asking_for_day_long_waits_stops_the_run(tmp_path: Path, server: MisbehavingServer) -> None:
    closed = json_answer(error_body("Come back tomorrow.", "429"), 429, {"retry-after": "86400"})
    base = server.script("closed", closed)
    spec = chat_job(tmp_path, base, 20, {"max_retry_wait_s": 1})
    started = time.monotonic()
    result = run_job(load_spec(spec))
    assert result.exit_code == 3, result.message
    assert time.monotonic() - started < 10  # not a 60 s hold, not rows failing one by one
    assert "24.0 h" in (result.message or "") and "max_retry_wait_s" in (result.message or "")
    assert outcome(tmp_path) == ({}, {})
    server.script("closed", chat_answer())  # the service is back: a plain rerun does every row
    again = run_job(load_spec(spec))
    assert again.exit_code == 0 and len(outcome(tmp_path)[0]) == 20


# ---------------------------------------------------------------------------------------------- gateways


def test_gateway_retry_after_and_call_id(tmp_path: Path, server: MisbehavingServer) -> None:
    """LiteLLM answers its own rpm limit with `llm_provider-retry-after` and names calls by x-litellm-call-id."""
    arrivals: list[float] = []
    limited = json_answer(error_body("LiteLLM Rate Limit Handler: Crossed TPM / RPM / Max Parallel Request Limit",
                                     "429"), 429, {"llm_provider-retry-after": "1", "x-litellm-call-id": "gw-429"})
    answer = json_answer(chat_body("ok"), headers={"x-litellm-call-id": "gw-call-7"})

    def timed(handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            arrivals.append(time.monotonic())
            return await handler(request)
        return handle

    base = server.script("litellm", timed(limited), timed(answer))
    result = run_job(load_spec(chat_job(tmp_path, base, 1, {"concurrency": 1, "max_retry_wait_s": 5})))
    assert result.exit_code == 0, result.message
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.9  # waited what the gateway said
    results, _ = outcome(tmp_path)
    assert results["r000"]["request_id"] == "gw-call-7"


# ---------------------------------------------------------------------------------------- a dead service


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (reads and drops what it is sent)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    listener.close()


def test_a_service_that_never_answers_stops_the_run_without_failing_rows(tmp_path: Path, silent_port: int,
                                                                          server: MisbehavingServer) -> None:
    base = f"http://127.0.0.1:{silent_port}/v1"
    spec = chat_job(tmp_path, base, 40, {"timeout_s": 0.4, "max_outage_s": 1.5, "max_attempts": 6,
                                          "max_retry_wait_s": 0.2})
    started = time.monotonic()
    result = run_job(load_spec(spec))
    assert result.exit_code == 3, result.message
    assert time.monotonic() - started < 15
    assert f"127.0.0.1:{silent_port}/v1/chat/completions gave no answer" in (result.message or "")
    assert outcome(tmp_path) == ({}, {})  # every row is still to do
    spec.write_text(spec.read_text().replace(base, server.script("up", chat_answer())))
    again = run_job(load_spec(spec))
    assert again.exit_code == 0 and len(outcome(tmp_path)[0]) == 40


def test_refused_connections_stop_the_run(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = chat_job(tmp_path, f"http://127.0.0.1:{port}", 40, {"max_outage_s": 1, "max_attempts": 8,
                                                               "max_retry_wait_s": 0.3})
    result = run_job(load_spec(spec))
    assert result.exit_code == 3 and "gave no answer" in (result.message or ""), result.message


def test_only_5xx_stops_the_run_and_a_plain_rerun_sends_the_rows_it_failed(tmp_path: Path,
                                                                          server: MisbehavingServer) -> None:
    base = server.script("down", slow(json_answer(error_body("upstream connect error", "server_error"), 503)))
    spec = chat_job(tmp_path, base, 100, {"max_outage_s": 1.5, "max_attempts": 2})
    result = run_job(load_spec(spec))
    assert result.exit_code == 3 and "answered only 5xx errors" in (result.message or ""), result.message
    _, failed = outcome(tmp_path)  # rows that ran out of attempts before the stop: the service's fault
    assert all(row["error_class"] == "InternalServerError" for row in failed.values())
    server.script("down", chat_answer())
    again = run_job(load_spec(spec))
    assert again.exit_code == 0, again.message
    assert again.summary["rows_failed_earlier"] == 0 and len(outcome(tmp_path)[0]) == 100


def test_rows_failed_on_transient_errors_are_sent_again_by_a_plain_rerun(tmp_path: Path,
                                                                        server: MisbehavingServer) -> None:
    flaky = json_answer(error_body("The server is busy.", "server_error"), 503)
    refused = json_answer(error_body("Invalid value for 'messages'.", "invalid_value"), 400)
    base = server.script("flaky", by_body({"FLAKY": flaky, "REFUSED": refused}, chat_answer()))
    spec = chat_job(tmp_path, base, 12, {"max_attempts": 2}, {3: "FLAKY", 8: "REFUSED"})
    first = run_job(load_spec(spec))
    assert first.exit_code == 1
    assert sorted(outcome(tmp_path)[1]) == ["r003", "r008"]
    assert first.summary["rows_failed_transient"] == 1
    status = run_cli("status", str(spec))
    assert "1 of the failed rows failed on transient errors" in status.stdout, status.stdout + status.stderr
    server.script("flaky", by_body({"REFUSED": refused}, chat_answer()))  # the busy moment has passed
    again = run_job(load_spec(spec))
    results, _ = outcome(tmp_path)
    assert "r003" in results and "r008" not in results  # the refusal stands until --retry-failed
    assert again.summary["rows_failed_earlier"] == 1 and again.exit_code == 1


# ------------------------------------------------------------------------------------------ a job-wide 400


def test_the_same_400_to_every_request_stops_the_job(tmp_path: Path, server: MisbehavingServer) -> None:
    unsupported = "API version not supported"
    base = server.script("old", json_answer(error_body(unsupported, "BadRequest"), 400))
    spec = embeddings_job(tmp_path, base, 320, {"batch_size": 256})
    result = run_job(load_spec(spec))
    assert result.exit_code == 3, result.message
    assert unsupported in (result.message or "")
    assert len(server.seen("old")) <= 30  # it was 635 requests, every batch split down to single rows
    assert outcome(tmp_path) == ({}, {})  # no row is blamed: after the fix a plain rerun sends all
    server.script("old", embeddings_answer())
    assert run_job(load_spec(spec)).exit_code == 0 and len(outcome(tmp_path)[0]) == 320


def test_one_bad_row_first_in_a_batch_is_still_only_that_rows_failure(tmp_path: Path,
                                                                     server: MisbehavingServer) -> None:
    bad = json_answer(error_body("Invalid 'input': empty string.", "invalid_value"), 400)
    base = server.script("one", by_body({"BADROW": bad}, embeddings_answer()))
    spec = embeddings_job(tmp_path, base, 64, {"batch_size": 64, "concurrency": 1}, {0: "BADROW"})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1, result.message
    results, failures = outcome(tmp_path)
    assert list(failures) == ["r000"] and len(results) == 63


def test_the_same_400_on_the_only_rows_fails_them(tmp_path: Path, server: MisbehavingServer) -> None:
    """Two rows cannot tell a job-wide refusal from two bad rows: they fail as rows, as before."""
    base = server.script("two", json_answer(error_body("Unsupported parameter: 'max_tokens'.", "unsupported"), 400))
    result = run_job(load_spec(chat_job(tmp_path, base, 2)))
    assert result.exit_code == 1, result.message
    assert sorted(outcome(tmp_path)[1]) == ["r000", "r001"]
