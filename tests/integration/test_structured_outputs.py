"""Structured outputs end to end against the emulator: a classification job's schema becomes typed Parquet
columns; answers that are not JSON, miss the schema or refuse never become successes (retried, then
failure rows with reasons) while good rows proceed; a schema that cannot be columns stops at validate."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import ROOT, read_dataset, run_cli, write_job, write_rows

SCHEMA = json.loads((ROOT / "jobs" / "schemas" / "doc_task.schema.json").read_text())


def classify_job(tmp_path: Path, url: str, rows: list[dict], schema: dict | None = None, **limits: int) -> Path:
    params = {"temperature": 0, "response_format": {"type": "json_schema", "json_schema": {
        "name": "doc_task", "strict": True, "schema": schema or SCHEMA}}}
    return write_job(tmp_path, url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "question"}, service={"deployment": "gpt-4o-mini"}, params=params,
                     limits={"concurrency": 4, **limits})


def sample_questions(count: int) -> list[dict]:
    lines = (ROOT / "sample_data" / "chat_prompts.jsonl").read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


def test_a_classification_job_gives_typed_columns(tmp_path: Path, emulator) -> None:
    rows = sample_questions(30)
    result = run_job(load_spec(classify_job(tmp_path, emulator.url, rows)))
    assert result.exit_code == 0, result.message
    table = ds.dataset(str(tmp_path / "out" / "results"), format="parquet").to_table()
    types = {name: table.schema.field(name).type for name in SCHEMA["properties"]}
    assert types == {"task": pa.string(), "module": pa.string(), "difficulty": pa.int64(), "confidence": pa.float64(),
                     "needs_code": pa.bool_(), "keywords": pa.list_(pa.field("item", pa.string())),
                     "audience": pa.struct([("level", pa.string()), ("role", pa.string())]), "caveat": pa.string()}
    records = table.to_pylist()
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)
    for record in records:
        assert record["task"] in SCHEMA["properties"]["task"]["enum"] and 1 <= record["difficulty"] <= 5
        assert json.loads(record["content"])["task"] == record["task"]  # the raw content stays


def test_invalid_answers_are_retried_then_failed_while_good_rows_proceed(tmp_path: Path, emulator) -> None:
    rows = [{"id": f"g{i}", "question": f"what does module {i} do?"} for i in range(12)]
    rows += [{"id": "off-schema", "question": "[[fault:schema:always]] label me"},
             {"id": "not-json-once", "question": "[[fault:badjson:1]] label me"},
             {"id": "not-json", "question": "[[fault:badjson:always]] label me"},
             {"id": "refused", "question": "[[fault:refusal:always]] label me"}]
    result = run_job(load_spec(classify_job(tmp_path, emulator.url, rows, schema_attempts=2)))
    assert result.exit_code == 1
    done = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    assert set(done) == {f"g{i}" for i in range(12)} | {"not-json-once"}
    assert done["not-json-once"]["attempts"] == 2
    failures = {f["id"]: f for f in read_dataset(tmp_path / "out" / "failures")}
    assert set(failures) == {"off-schema", "not-json", "refused"}
    for name in ("off-schema", "not-json"):
        failure = failures[name]
        assert failure["error_code"] == "schema_mismatch" and failure["attempts"] == 2
        assert "output schema" in failure["message"] and failure["detail"]  # the raw answer, for inspection
    assert failures["refused"]["error_code"] == "refusal" and failures["refused"]["attempts"] == 1
    assert "the model refused" in failures["refused"]["message"]
    assert emulator.stats()["by_op"]["chat/completions"] == 12 + 2 + 2 + 2 + 1


def test_a_schema_that_cannot_be_columns_is_refused_at_validate(tmp_path: Path, emulator) -> None:
    schema = {"type": "object", "properties": {"value": {"type": ["string", "integer"]}}}
    spec = classify_job(tmp_path, emulator.url, sample_questions(2), schema=schema)
    for command in ("validate", "run"):
        done = run_cli(command, str(spec))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "params.response_format.json_schema.schema.properties.value.type: ['string', 'integer']" in line
        assert "Traceback" not in done.stderr
    assert emulator.stats()["requests"] == 0


def test_flex_unavailability_is_retried_without_slowing_the_pacing(tmp_path: Path) -> None:
    """Flex's 429 "resource unavailable" is no quota signal: the pacer neither holds the workers nor cuts its
    rate; each refused request waits and tries again on its own."""
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.server import EmulatorThread

    rows = [{"id": f"r{i}", "question": f"question {i}"} for i in range(20)]
    with EmulatorThread(EmulatorConfig(flex_unavailable_rate=0.3, flex_latency_ms=50, seed=3)) as emulator:
        spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                         inputs={"prompt": "question"}, service={"deployment": "gpt-4o-mini"},
                         params={"service_tier": "flex", "max_tokens": 20},
                         limits={"concurrency": 8, "requests_per_minute": 1200, "max_attempts": 10,
                                 "max_retry_wait_s": 0.2})
        loaded = load_spec(spec)
        assert loaded.limits.timeout_s == 5  # the test's own; without one flex waits 900 s
        result = run_job(loaded)
        refused = emulator.stats()["by_status"].get("429", 0)
    assert result.exit_code == 0, result.message
    assert refused >= 3
    # Not the quota's refusals: no Throttled event (which is what holds every worker and cuts the rate).
    assert result.summary["throttled_429"] == 0
    assert result.summary["retries"].get("429", 0) == refused


def test_flex_waits_long_for_an_answer_by_default(tmp_path: Path) -> None:
    spec = write_job(tmp_path, "http://127.0.0.1:9", "chat", input_path=write_rows(tmp_path / "in.jsonl", []),
                     inputs={"prompt": "question"}, service={"deployment": "gpt-4o-mini"},
                     params={"service_tier": "flex"}, limits={"concurrency": 2})
    text = spec.read_text().replace("timeout_s = 5\n", "")
    spec.write_text(text)
    assert load_spec(spec).limits.timeout_s == 900


def test_cached_and_reasoning_tokens_are_columns_summed_and_priced(tmp_path: Path, emulator) -> None:
    system = "You are a careful reviewer of Python documentation. " * 120  # ~1,500 tokens: a cacheable prefix
    rows = [{"id": f"r{i}", "question": f"question {i}"} for i in range(6)]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "question", "system": system}, service={"deployment": "o4-mini"},
                     params={"max_completion_tokens": 2000, "reasoning_effort": "low"}, limits={"concurrency": 1})
    spec.write_text(spec.read_text() + "[pricing]\ninput_per_1m = 1.0\ncached_input_per_1m = 0.25\n"
                    "output_per_1m = 4.0\n")
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    records = read_dataset(tmp_path / "out" / "results")
    assert all(r["reasoning_tokens"] and r["reasoning_tokens"] <= r["completion_tokens"] for r in records)
    assert sum(1 for r in records if r["cached_tokens"]) >= 5  # every row after the first reads the cache
    summary = result.summary
    assert summary["tokens_cached"] == sum(r["cached_tokens"] or 0 for r in records) > 0
    assert summary["tokens_reasoning"] == sum(r["reasoning_tokens"] for r in records)
    tokens_in, cached, tokens_out = summary["tokens_in"], summary["tokens_cached"], summary["tokens_out"]
    expected = ((tokens_in - cached) * 1.0 + cached * 0.25 + tokens_out * 4.0) / 1e6
    assert abs(summary["cost"]["amount"] - expected) < 1e-6
