"""Batch-mode runs against the emulator over real HTTP: results, splitting, failures, expiry, fallback."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.batch import batch_summary, lines
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.content import embedding_vector
from pipeline.emulator.server import EmulatorThread
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from .conftest import batch_counters, batch_settings, chat_job, chat_rows, read_dataset, write_job, write_rows

COMPARED = ("content", "finish_reason", "prompt_tokens", "completion_tokens", "content_filtered")


def by_id(folder: Path) -> dict[str, dict]:
    rows = read_dataset(folder)
    counts = Counter(r["id"] for r in rows)
    assert not counts or max(counts.values()) == 1, "an id was written twice"
    return {r["id"]: r for r in rows}


def run(spec: Path) -> int:
    return run_job(load_spec(spec), RunOptions()).exit_code


def test_chat_batch_equals_online_run_and_splits_files(tmp_path: Path, emulator, monkeypatch) -> None:
    monkeypatch.setitem(lines.MAX_LINES, "emulator", 10)
    rows = chat_rows(25)
    online = chat_job(tmp_path / "online", emulator.url, rows, service={"mode": "online"})
    batch = chat_job(tmp_path / "batch", emulator.url, rows)
    assert run(online) == 0
    assert emulator.stats()["by_op"] == {"chat/completions": 25}
    assert run(batch) == 0
    assert emulator.stats()["by_op"] == {"chat/completions": 25}  # no online request in batch mode
    expected, got = by_id(tmp_path / "online" / "out" / "results"), by_id(tmp_path / "batch" / "out" / "results")
    assert sorted(got) == sorted(expected)
    for row_id, result in got.items():
        assert {k: result[k] for k in COMPARED} == {k: expected[row_id][k] for k in COMPARED}
        assert result["request_id"] and result["deployment"] == "gpt-4o-mini"
    counters = batch_counters(emulator)
    assert counters["uploads"] == counters["batches_created"] == 3  # 25 lines at 10 per file
    summary = batch_summary(tmp_path / "batch" / "out")
    assert [s["status"] for s in summary] == ["collected"] * 3 and [s["lines"] for s in summary] == [10, 10, 5]
    assert not list((tmp_path / "batch" / "out" / "batches").iterdir())  # sidecars go once collected


def test_files_split_at_the_byte_limit(tmp_path: Path, emulator, monkeypatch) -> None:
    monkeypatch.setattr(lines, "MAX_FILE_BYTES", 1000)  # about 4 lines of ~230 bytes
    assert run(chat_job(tmp_path, emulator.url, chat_rows(10))) == 0
    assert batch_counters(emulator)["batches_created"] == 3
    assert len(by_id(tmp_path / "out" / "results")) == 10


def test_embeddings_batch_on_the_openai_route(tmp_path: Path, emulator, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k-oa")
    rows = [{"id": f"e{i}", "text": f"passage {i}"} for i in range(6)]
    spec = write_job(tmp_path, emulator.url + "/v1", "embeddings", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     service={"provider": "openai", "model": "text-embedding-3-small", "deployment": None,
                              "mode": "batch", "poll_interval_s": 0.05})
    assert run(spec) == 0
    results = by_id(tmp_path / "out" / "results")
    for row in rows:
        assert np.allclose(results[row["id"]]["embedding"], embedding_vector(row["text"], 1536))
        assert results[row["id"]]["prompt_tokens"] > 0
    batch = emulator.get_json("/_emulator/batches")["batches"][0]
    assert batch["endpoint"] == "/v1/embeddings" and batch["error_file_id"] is None


def test_lines_failing_inside_a_batch_become_failures(tmp_path: Path, emulator) -> None:
    rows = chat_rows(8, {1: "[[batchfail]]", 2: "[[fault:400:always]]", 3: "BLOCKME please"})
    assert run(chat_job(tmp_path, emulator.url, rows)) == 1
    failures = by_id(tmp_path / "out" / "failures")
    assert sorted(failures) == ["r0001", "r0002", "r0003"]
    assert failures["r0001"]["error_code"] == "server_error" and failures["r0001"]["status"] is None
    assert "[[batchfail]]" in failures["r0001"]["message"] and failures["r0001"]["line"] == 2
    assert failures["r0002"]["status"] == 400 and failures["r0002"]["error_class"] == "BadRequestError"
    assert failures["r0003"]["error_code"] == "content_filter" and failures["r0003"]["request_id"]
    assert failures["r0003"]["detail"]  # the content-filter categories, as online
    assert len(by_id(tmp_path / "out" / "results")) == 5


def test_expired_batch_keeps_finished_lines_and_resubmits_the_rest(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, expire=True, expire_fraction=0.4, expire_limit=1)
    assert run(chat_job(tmp_path, emulator.url, chat_rows(20))) == 0
    assert sorted(by_id(tmp_path / "out" / "results")) == [f"r{i:04d}" for i in range(20)]
    batches = emulator.get_json("/_emulator/batches")["batches"]
    assert [(b["status"], b["request_counts"]["total"], b["request_counts"]["completed"]) for b in batches] == [
        ("expired", 20, 8), ("completed", 12, 12)]
    assert [s["outcome"] for s in batch_summary(tmp_path / "out")] == [
        {"succeeded": 8, "not_run": 12}, {"succeeded": 12, "not_run": 0}]


def test_a_batch_that_ran_nothing_fails_its_rows_instead_of_looping(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, expire=True, expire_fraction=0.0)
    assert run(chat_job(tmp_path, emulator.url, chat_rows(5))) == 1
    failures = by_id(tmp_path / "out" / "failures")
    assert len(failures) == 5 and {f["error_code"] for f in failures.values()} == {"batch_expired"}
    assert batch_counters(emulator)["batches_created"] == 1


def test_fallback_online_sends_the_rest_through_the_online_api(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, expire=True, expire_fraction=0.5)
    result = run_job(load_spec(chat_job(tmp_path, emulator.url, chat_rows(10), service={"fallback": "online"})))
    assert result.exit_code == 0 and result.summary["rows_succeeded"] == 10
    assert batch_counters(emulator)["batches_created"] == 1
    assert emulator.stats()["by_op"] == {"chat/completions": 5}
    results = by_id(tmp_path / "out" / "results")
    assert sorted(results) == [f"r{i:04d}" for i in range(10)]
    assert sum(r["latency_ms"] is not None for r in results.values()) == 5  # the online ones


def test_keep_columns_and_limit(tmp_path: Path, emulator) -> None:
    rows = [{**row, "topic": f"t{i}"} for i, row in enumerate(chat_rows(6))]
    spec = chat_job(tmp_path, emulator.url, rows, output={"keep": ["topic"]})
    assert run_job(load_spec(spec), RunOptions(limit=4)).exit_code == 0
    results = by_id(tmp_path / "out" / "results")
    assert {r["id"]: r["topic"] for r in results.values()} == {f"r{i:04d}": f"t{i}" for i in range(4)}
    assert run(spec) == 0  # the rest on a second run
    assert len(by_id(tmp_path / "out" / "results")) == 6


@pytest.mark.parametrize("budget", [{"max_tokens": 200}, {"max_cost": 0.00002}])
def test_token_and_cost_budgets_hold_against_the_lines_written(tmp_path: Path, emulator,
                                                               budget: dict[str, float]) -> None:
    """Tokens are known only when a batch ends, so the budget is held against what the lines written
    may use (prompt estimate + max_tokens 30): a few rows go, the run exits 4, the next run goes on."""
    spec = chat_job(tmp_path, emulator.url, chat_rows(12), limits=budget)
    first = run_job(load_spec(spec))
    assert first.exit_code == 4 and "run again" in (first.message or "")
    done = len(by_id(tmp_path / "out" / "results"))
    assert 1 <= done < 12
    assert batch_counters(emulator)["lines_answered"] == done
    while run_job(load_spec(spec)).exit_code == 4:
        pass
    assert len(by_id(tmp_path / "out" / "results")) == 12


@pytest.mark.parametrize("status", [401, 404])
def test_service_refusing_the_batch_api_aborts(tmp_path: Path, emulator, monkeypatch, status: int) -> None:
    monkeypatch.setenv("BATCH_TEST_KEY", "wrong")
    if status == 401:
        emulator.configure(api_key="right")
        service = {"provider": "azure", "api_version": "2024-10-21", "api_key_env": "BATCH_TEST_KEY"}
    else:
        service = {"api_version": "1999-01-01-nope"}
    result = run_job(load_spec(chat_job(tmp_path, emulator.url, chat_rows(3), service=service)))
    assert result.exit_code == 3 and "refused the batch API" in (result.message or "")


def test_max_duration_leaves_batches_running_and_a_lost_batch_is_sent_again(tmp_path: Path, emulator) -> None:
    batch_settings(emulator, processing_delay_s=30)
    result = run_job(load_spec(chat_job(tmp_path, emulator.url, chat_rows(5))), RunOptions(max_duration_s=0.3))
    assert result.exit_code == 4 and "keep running at the service" in (result.message or "")
    assert [s["status"] for s in batch_summary(tmp_path / "out")] == ["in_progress"]
    with EmulatorThread(EmulatorConfig()) as other:  # a service that never saw that batch
        assert run(chat_job(tmp_path, other.url, chat_rows(5))) == 0
        assert batch_counters(other)["batches_created"] == 1
    assert sorted(by_id(tmp_path / "out" / "results")) == [f"r{i:04d}" for i in range(5)]
    assert [s["status"] for s in batch_summary(tmp_path / "out")] == ["collected", "collected"]


def test_package_exports() -> None:
    import pipeline.batch

    assert all(hasattr(pipeline.batch, name) for name in pipeline.batch.__all__)


def test_an_input_that_grows_while_batch_files_are_written_stops_with_exit_2(tmp_path: Path, emulator,
                                                                            monkeypatch) -> None:
    """A row appended after preflight checked the ids for repeats must not slip into a batch."""
    from pipeline.batch.engine import BatchJob

    spec = chat_job(tmp_path, emulator.url, chat_rows(6))
    original = BatchJob._write_inputs

    def grow_then_write(self: BatchJob, rows: Any) -> Any:
        with open(tmp_path / "in.jsonl", "a", encoding="utf-8") as handle:
            handle.write('{"id": "r0000", "text": "a repeated id, appended mid-run"}\n')
        return original(self, rows)

    monkeypatch.setattr(BatchJob, "_write_inputs", grow_then_write)
    result = run_job(load_spec(spec))
    assert result.exit_code == 2 and "changed while it was read" in (result.message or "")
    assert batch_counters(emulator).get("batches_created", 0) == 0
