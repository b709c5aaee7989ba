"""End-to-end embeddings runs against the emulator over HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.emulator.content import embedding_vector
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from .conftest import corpus, read_dataset, result_ids, run_cli, write_job, write_rows


def test_vectors_decoded_exactly(tmp_path: Path, emulator) -> None:
    rows = corpus(40)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     params={"dimensions": 64}, limits={"batch_size": 16})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    texts = {r["id"]: r["text"] for r in rows}
    records = read_dataset(tmp_path / "out" / "results")
    assert sorted(r["id"] for r in records) == sorted(texts)
    for record in records:
        expected = embedding_vector(texts[record["id"]], 64)
        assert np.array_equal(np.asarray(record["embedding"], dtype=np.float32), expected)
        assert record["request_id"] and record["attempts"] == 1
    stats = emulator.stats()
    assert stats["requests"] == 3  # 40 rows in batches of 16


def test_resume_skips_done_rows(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(30)),
                     limits={"batch_size": 5})
    first = run_job(load_spec(spec), RunOptions(limit=12))
    assert first.exit_code == 0
    done_first = len(result_ids(tmp_path / "out"))
    assert 10 <= done_first <= 15
    second = run_job(load_spec(spec))
    assert second.exit_code == 0
    assert second.summary["rows_skipped"] == done_first
    ids = result_ids(tmp_path / "out")
    assert sorted(ids) == sorted(r["id"] for r in corpus(30))
    assert max(Counter(ids).values()) == 1


def test_duplicate_ids_refused_before_any_request(tmp_path: Path, emulator) -> None:
    rows = [*corpus(5), {"id": "r00002", "text": "again"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows))
    proc = run_cli("run", str(spec))
    assert proc.returncode == 2
    assert "'r00002' at lines 3, 6" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert emulator.stats()["requests"] == 0


def test_spec_change_refused_unless_forced(tmp_path: Path, emulator) -> None:
    data = write_rows(tmp_path / "in.jsonl", corpus(5))
    spec = write_job(tmp_path, emulator.url, input_path=data, params={"dimensions": 32})
    assert run_cli("run", str(spec), "-q").returncode == 0
    spec = write_job(tmp_path, emulator.url, input_path=data, params={"dimensions": 64})
    proc = run_cli("run", str(spec), "-q")
    assert proc.returncode == 2
    assert "params.dimensions: 32 -> 64" in proc.stderr
    assert run_cli("run", str(spec), "-q", "--force").returncode == 0


def test_bad_rows_go_to_failures_good_rows_proceed(tmp_path: Path, emulator) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": ""}\nnot json\n{"id": "c", "text": 7}\n'
                    '{"id": "d", "text": "also fine"}\n')
    spec = write_job(tmp_path, emulator.url, input_path=path)
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    assert sorted(result_ids(tmp_path / "out")) == ["a", "d"]
    failures = {f["id"]: f for f in read_dataset(tmp_path / "out" / "failures")}
    assert set(failures) == {"b", "#line:3", "c"}
    assert "line 3" in failures["#line:3"]["message"] and failures["b"]["stage"] == "input"


def test_a_row_the_service_refuses_fails_alone_not_its_whole_batch(tmp_path: Path, emulator) -> None:
    """The service refuses a 16-row request for one row's content: the request is halved down to
    that row, which fails with the service's reason, and the other 39 rows get their vectors."""
    rows = corpus(40)
    rows[21]["text"] += " [[fault:400:always]]"
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 16})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    assert sorted(result_ids(tmp_path / "out")) == sorted(r["id"] for i, r in enumerate(rows) if i != 21)
    failures = read_dataset(tmp_path / "out" / "failures")
    assert [(f["id"], f["status"], f["attempts"]) for f in failures] == [(rows[21]["id"], 400, 1)]
    assert emulator.stats()["requests"] == 3 + 2 * 4  # 3 batches, then 16 -> 8 -> 4 -> 2 -> 1: two per level


def test_validate_reports_without_calling(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(3)))
    proc = run_cli("validate", str(spec))
    assert proc.returncode == 0, proc.stderr
    assert "3 rows" in proc.stdout
    missing = write_job(tmp_path, emulator.url, input_path=tmp_path / "in.jsonl", inputs={"text": "body"})
    proc = run_cli("validate", str(missing))
    assert proc.returncode == 2 and "'body' not found" in proc.stderr
    assert emulator.stats()["requests"] == 0
