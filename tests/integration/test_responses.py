"""Responses jobs against the emulator over real HTTP: the Azure v1 route (also for api_style = "classic")
and the OpenAI route, streamed and not; an incomplete answer recorded with its status; batch mode;
json_schema typed columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, write_job, write_rows

ROWS = [{"id": f"q{i}", "question": f"question {i} about sorting lists"} for i in range(4)]
MODEL = "gpt-4.1-mini"
AZURE_CLASSIC = {"provider": "azure", "api_version": "2024-10-21"}
AZURE_V1 = {"provider": "azure", "api_style": "v1"}
OPENAI = {"provider": "openai", "model": MODEL, "deployment": None}


def responses_job(folder: Path, url: str, *, service: dict[str, Any] | None = None,
                  params: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_job(folder, url, "responses", input_path=write_rows(folder / "in.jsonl", ROWS),
                     inputs={"template": "Answer briefly: {question}", "system": "Be brief."},
                     service={"deployment": MODEL, **(service or {})},
                     params=params if params is not None else {"max_output_tokens": 400})


def run(spec: Path) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Exit code, results and failures of one run; its summary counts the tokens the results hold."""
    outcome = run_job(load_spec(spec), RunOptions())
    out = spec.parent / "out"
    results = read_dataset(out / "results")
    assert outcome.summary["tokens_in"] == sum(r["input_tokens"] or 0 for r in results)
    assert outcome.summary["tokens_out"] == sum(r["output_tokens"] or 0 for r in results)
    return outcome.exit_code, results, read_dataset(out / "failures")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("service", "route"), [(AZURE_CLASSIC, "azure-v1"), (AZURE_V1, "azure-v1"),
                                                (OPENAI, "openai")], ids=["azure-classic", "azure-v1", "openai"])
def test_routes_plain_and_streamed(tmp_path: Path, emulator, monkeypatch, service: dict[str, Any], route: str,
                                   stream: bool) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k-az")
    monkeypatch.setenv("OPENAI_API_KEY", "k-oa")
    base = emulator.url + ("/v1" if service["provider"] == "openai" else "")
    params = {"max_output_tokens": 400, **({"stream": True} if stream else {})}
    code, results, failures = run(responses_job(tmp_path, base, service={**service, "base_url": base},
                                                params=params))
    assert code == 0 and not failures, failures
    assert emulator.stats()["by_route"] == {route: len(ROWS)}  # classic Azure has no responses route: v1
    assert sorted(r["id"] for r in results) == [r["id"] for r in ROWS]
    for result in results:
        assert result["status"] == "completed" and result["incomplete_reason"] is None
        assert result["output_text"] and result["input_tokens"] > 0 and result["output_tokens"] > 0
        assert result["response_id"] and result["deployment"] == MODEL
        assert (result["ttft_ms"] is not None) is stream


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_incomplete_answer_is_a_result_with_its_status(tmp_path: Path, emulator, stream: bool) -> None:
    params = {"max_output_tokens": 16, **({"stream": True} if stream else {})}
    code, results, failures = run(responses_job(tmp_path, emulator.url, params=params))
    assert code == 0 and not failures, failures
    assert len(results) == len(ROWS)
    for result in results:
        assert (result["status"], result["incomplete_reason"]) == ("incomplete", "max_output_tokens")
        assert result["output_tokens"] <= 16


def test_batch_mode(tmp_path: Path, emulator) -> None:
    """On the emulator's classic routes: the Files and Batch APIs of v1, lines for /v1/responses."""
    service = {"mode": "batch", "poll_interval_s": 0.05}
    code, results, failures = run(responses_job(tmp_path, emulator.url, service=service))
    assert code == 0 and not failures, failures
    assert sorted(r["id"] for r in results) == [r["id"] for r in ROWS]
    assert all(r["status"] == "completed" and r["output_text"] and r["input_tokens"] > 0 for r in results)
    assert emulator.get_json("/_emulator/batches")["counters"]["batches_created"] == 1
    assert not emulator.stats()["by_op"].get("responses")  # no online request in batch mode


TICKET = {"type": "json_schema", "name": "ticket", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["label", "urgency", "tags"],
    "properties": {"label": {"type": "string", "enum": ["bug", "question", "praise"]},
                   "urgency": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}}


def test_json_schema_answers_fill_typed_columns(tmp_path: Path, emulator) -> None:
    params = {"max_output_tokens": 400, "text": {"format": TICKET}}
    code, results, failures = run(responses_job(tmp_path, emulator.url, params=params))
    assert code == 0 and not failures, failures
    assert len(results) == len(ROWS)
    for result in results:
        assert result["label"] in ("bug", "question", "praise") and isinstance(result["urgency"], int)
        assert all(isinstance(tag, str) for tag in result["tags"])
        assert json.loads(result["output_text"]) == {k: result[k] for k in ("label", "urgency", "tags")}


def test_a_stream_cut_before_its_terminal_event_is_sent_again(tmp_path: Path, emulator) -> None:
    rows = [{"id": "cut", "question": "why? [[fault:truncate:1]]"}, {"id": "unfinished", "question": "how? "
            "[[fault:nofinish:1]]"}, {"id": "fine", "question": "what?"}]
    folder = tmp_path / "job"
    folder.mkdir()
    spec = write_job(folder, emulator.url, "responses", input_path=write_rows(folder / "in.jsonl", rows),
                     inputs={"template": "Answer briefly: {question}"}, service={"deployment": MODEL},
                     params={"stream": True, "max_output_tokens": 400})
    code, results, failures = run(spec)
    assert code == 0 and not failures, failures
    attempts = {r["id"]: r["attempts"] for r in results}
    assert attempts == {"cut": 2, "unfinished": 2, "fine": 1}
    assert all(r["status"] == "completed" and r["output_text"] for r in results)
