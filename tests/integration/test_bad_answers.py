"""Answers a part write could not hold (NaN usage, duplicated indices, wrong vector lengths, content
parts, streams without a finish reason...) are caught where they are parsed: retried, then failure
rows with the reason, while every good row is committed exactly once. Real jobs over HTTP against
the emulator's answer faults (`[[fault:KIND:N]]`, pipeline/emulator/faults.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.client.retry import splits_instead
from pipeline.errors import AnswerCountError, InvalidResponseError, is_retryable
from pipeline.runner import RunResult, run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, write_job, write_rows

ATTEMPTS = 3
FAST_RETRIES = {"max_attempts": ATTEMPTS, "max_retry_wait_s": 0.2}


def run(spec: Path) -> RunResult:
    return run_job(load_spec(spec))


def outcome(out: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(results, failures) by id, after checking no id was written twice."""
    results, failures = read_dataset(out / "results"), read_dataset(out / "failures")
    for rows in (results, failures):
        counts = Counter(r["id"] for r in rows)
        assert not counts or max(counts.values()) == 1, f"an id was written twice: {counts.most_common(3)}"
    return {r["id"]: r for r in results}, {r["id"]: r for r in failures}


def marked_rows(kinds: dict[str, str], good: int) -> list[dict[str, Any]]:
    """Per kind a row that is spoiled twice then answered well (`KIND-2`) and one always spoiled
    (`KIND-always`), among `good` rows without markers."""
    rows = [{"id": f"good{i}", "text": f"an ordinary passage number {i}"} for i in range(good)]
    for kind in kinds:
        rows += [{"id": f"{kind}-{times}", "text": f"passage {kind} [[fault:{kind}:{times}]]"}
                 for times in ("2", "always")]
    return rows


def check_run(result: RunResult, out: Path, rows: list[dict[str, Any]], reasons: dict[str, str],
              error_class: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Exit 1; `KIND-always` rows failed after every attempt with the reason; all other rows done once."""
    assert result.exit_code == 1, result.message
    results, failures = outcome(out)
    failed = {f"{kind}-always" for kind in reasons}
    assert set(failures) == failed
    assert set(results) == {r["id"] for r in rows} - failed
    for kind, reason in reasons.items():
        failure = failures[f"{kind}-always"]
        assert reason in failure["message"], failure
        assert failure["stage"] == "request" and failure["attempts"] == ATTEMPTS, failure
        assert failure["error_class"] == (error_class or {}).get(kind, "InvalidResponseError"), failure
        assert results[f"{kind}-2"]["attempts"] == 3
    return results


def test_invalid_answers_are_retried_unless_a_split_answers_them() -> None:
    assert is_retryable(InvalidResponseError("NaN"))
    assert is_retryable(AnswerCountError("0 for 1", expected=1, got=0))
    assert not splits_instead(AnswerCountError("0 for 1", expected=1, got=0))
    assert splits_instead(AnswerCountError("1 for 16", expected=16, got=1))


EMBEDDING_REASONS = {
    "badindex": "is out of range for 1 inputs",  # one input: the fault gives it index 1
    "nanusage": "usage.prompt_tokens is NaN",
    "wrongdim": "the embeddings have 1536 values, but the job asks for dimensions = 256",
    "nanvector": "column 'embedding': the vector holds NaN or infinite values",
    "fewervectors": "the answer holds 0 embeddings for 1 inputs",
}


def test_bad_embedding_answers_become_failures(tmp_path: Path, emulator) -> None:
    rows = marked_rows(EMBEDDING_REASONS, good=6)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     params={"dimensions": 256}, limits={**FAST_RETRIES, "batch_size": 1})
    result = run(spec)
    results = check_run(result, tmp_path / "out", rows, EMBEDDING_REASONS, {"fewervectors": "AnswerCountError"})
    assert {len(r["embedding"]) for r in results.values()} == {256}
    assert sum(result.summary["retries"].values()) == 2 * 2 * len(EMBEDDING_REASONS)


def test_fewer_vectors_than_inputs_splits_the_batch(tmp_path: Path, emulator) -> None:
    """A gateway answering 8 inputs with 1 vector: the batch is halved down to the row it spoils,
    never sent again unchanged; the good rows of the same request succeed."""
    rows = [{"id": f"r{i:02d}", "text": f"passage {i}"} for i in range(16)]
    rows[3]["text"] += " [[fault:fewervectors:always]]"
    rows[12]["text"] += " [[fault:fewervectors:2]]"  # spoils the 8 and the 4 it is in, not the 2
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={**FAST_RETRIES, "batch_size": 8, "concurrency": 1})
    result = run(spec)
    assert result.exit_code == 1, result.message
    results, failures = outcome(tmp_path / "out")
    assert set(results) == {r["id"] for r in rows} - {"r03"}
    assert all(r["attempts"] == 1 for r in results.values())
    (failure,) = failures.values()
    assert (failure["id"], failure["error_class"], failure["attempts"]) == ("r03", "AnswerCountError", ATTEMPTS)
    assert "0 embeddings for 1 inputs" in failure["message"]
    # Only the lone row was retried. Requests for rows 0-7: the 8, 0-3, 0-1, 2-3, r02, r03 x ATTEMPTS, 4-7;
    # for rows 8-15: the 8, 8-11, 12-15, 12-13 (the marker's third sighting: a good answer), 14-15.
    assert sum(result.summary["retries"].values()) == ATTEMPTS - 1
    assert emulator.stats()["by_op"] == {"embeddings": 6 + ATTEMPTS + 5}


@pytest.mark.parametrize(("endpoint", "params", "reasons"), [
    ("chat", {}, {"nanusage": "usage.prompt_tokens is NaN"}),
    ("chat", {"stream": True}, {"nofinish": "the stream ended without a finish reason",
                                "nanusage": "usage.prompt_tokens is NaN"}),
    ("completions", {"stream": True}, {"nofinish": "the stream ended without a finish reason"}),
], ids=["chat", "chat-stream", "completions-stream"])
def test_bad_text_answers_become_failures(tmp_path: Path, emulator, endpoint: str, params: dict,
                                          reasons: dict[str, str]) -> None:
    rows = marked_rows(reasons, good=4)
    spec = write_job(tmp_path, emulator.url, endpoint, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, params={"max_tokens": 20, **params},
                     service={"deployment": "gpt-4o-mini"}, limits=FAST_RETRIES)
    results = check_run(run(spec), tmp_path / "out", rows, reasons)
    column = "content" if endpoint == "chat" else "text"
    assert all(isinstance(r[column], str) and r["finish_reason"] for r in results.values())


def test_content_parts_are_joined_into_the_content(tmp_path: Path, emulator) -> None:
    rows = [{"id": "plain", "text": "tell me about lists"},
            {"id": "parts", "text": "tell me about lists [[fault:contentparts:always]]"}]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, params={"max_tokens": 20}, service={"deployment": "gpt-4o-mini"})
    result = run(spec)
    assert result.exit_code == 0, (result.message, read_dataset(tmp_path / "out" / "failures"))
    results, _ = outcome(tmp_path / "out")
    assert isinstance(results["parts"]["content"], str) and results["parts"]["content"]
    assert results["parts"]["attempts"] == 1
    assert emulator.stats()["faults"] == {"contentparts": 1}


def test_batch_mode_checks_each_output_line(tmp_path: Path, emulator) -> None:
    """Batch mode parses output lines through the same endpoint.parse: same checks, no retry."""
    rows = [{"id": "good", "text": "a question about sorting"},
            {"id": "nan", "text": "a question [[fault:nanusage:always]]"},
            {"id": "parts", "text": "a question [[fault:contentparts:always]]"}]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, params={"max_tokens": 20},
                     service={"deployment": "gpt-4o-mini", "mode": "batch", "poll_interval_s": 0.05})
    result = run(spec)
    assert result.exit_code == 1, result.message
    results, failures = outcome(tmp_path / "out")
    assert set(results) == {"good", "parts"} and isinstance(results["parts"]["content"], str)
    assert "usage.prompt_tokens is NaN" in failures["nan"]["message"]
    assert failures["nan"]["error_class"] == "InvalidResponseError"
