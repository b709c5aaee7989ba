"""The bad-input corpus (tests/data/bad, see its README). A problem with the input as a whole stops the
run before any request with exit 2 and one line; a bad row goes to failures with a reason naming its
line or id while the good rows are processed, and the run exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.server import EmulatorThread
from pipeline.endpoints import ENDPOINT_CLASSES
from pipeline.runner import run_job
from pipeline.spec import load_spec

from ..integration.conftest import read_dataset, run_cli, write_job, write_rows
from .conftest import BAD_DATA, failure_records

# file -> {bad line: what its failure message must say}; every other non-blank line is a good row ok-N.
ROW_PROBLEMS: dict[str, dict[int, str]] = {
    "malformed.jsonl": {3: "malformed JSON", 5: "malformed JSON", 6: "malformed JSON",
                        8: "expected a JSON object", 9: "malformed JSON"},
    "missing_id.jsonl": {2: "no usable 'id'", 4: "no usable 'id'"},
    "missing_text.jsonl": {2: "no 'text' value", 4: "no 'text' value"},
    "wrong_type.jsonl": {2: "must be a string, got int", 3: "must be a string, got list", 4: "no 'text' value",
                         5: "must be a string, got dict", 6: "must be a string, got bool"},
    "empty_strings.jsonl": {2: "'text' is empty", 3: "'text' is empty", 4: "no usable 'id'"},
    "too_long.jsonl": {2: "over the 8192-token input limit"},
    "invalid_utf8.jsonl": {2: "invalid UTF-8"},
}


def line_count(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def embeddings_job(tmp_path: Path, url: str, input_path: Path, **job: Any) -> Path:
    return write_job(tmp_path, url, input_path=input_path, limits={"batch_size": 8}, **job)


@pytest.mark.parametrize("name", sorted(ROW_PROBLEMS))
def test_bad_rows_fail_alone_with_their_line(tmp_path: Path, emulator: EmulatorThread, name: str) -> None:
    problems = ROW_PROBLEMS[name]
    result = run_job(load_spec(embeddings_job(tmp_path, emulator.url, BAD_DATA / name)))
    assert result.exit_code == 1
    failures = {f["line"]: f for f in failure_records(tmp_path / "out")}
    assert sorted(failures) == sorted(problems)
    for line, reason in problems.items():
        failure = failures[line]
        assert reason in failure["message"] and f"line {line}" in failure["message"], failure
        assert failure["stage"] == "input" and failure["error_code"] == "invalid_row"
    good = [f"ok-{n}" for n in range(1, line_count(BAD_DATA / name) + 1) if n not in problems]
    assert sorted(r["id"] for r in read_dataset(tmp_path / "out" / "results")) == sorted(good)


def test_bad_rows_exit_1_from_the_cli_without_a_traceback(tmp_path: Path, emulator: EmulatorThread) -> None:
    proc = run_cli("run", str(embeddings_job(tmp_path, emulator.url, BAD_DATA / "malformed.jsonl")), "-q")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(read_dataset(tmp_path / "out" / "results")) == 5


def test_a_byte_order_mark_does_not_cost_the_first_row(tmp_path: Path, emulator: EmulatorThread) -> None:
    """Editors on Windows save UTF-8 with a BOM; the first row is a good row all the same."""
    source = tmp_path / "bom.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "text": "first"}\r\n{"id": "b", "text": "second"}\r\n')
    result = run_job(load_spec(embeddings_job(tmp_path, emulator.url, source)))
    assert result.exit_code == 0, failure_records(tmp_path / "out")
    assert sorted(r["id"] for r in read_dataset(tmp_path / "out" / "results")) == ["a", "b"]


SPEC_PROBLEMS = {
    "duplicate_ids.jsonl": "'dup-1' at lines 1, 3; 'dup-2' at lines 2, 5",
    "empty.jsonl": "no readable rows",
    "wrong_schema.parquet": "column(s) 'text' not found in the input (it has id, body)",
    "missing.jsonl": "input not found",
}


@pytest.mark.parametrize("name", sorted(SPEC_PROBLEMS))
def test_input_problems_exit_2_before_any_request(tmp_path: Path, emulator: EmulatorThread, name: str) -> None:
    spec = embeddings_job(tmp_path, emulator.url, BAD_DATA / name)
    assert_refused_before_any_request(run_cli("run", str(spec), "-q"), SPEC_PROBLEMS[name], emulator)


def assert_refused_before_any_request(proc: Any, reason: str, emulator: EmulatorThread) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], proc.stderr
    assert emulator.stats()["requests"] == 0


def test_parquet_id_of_the_wrong_type_fails_each_row(tmp_path: Path, emulator: EmulatorThread) -> None:
    """Mapped to the columns it has, the wrong-schema file's struct ids are row failures, by row number."""
    spec = embeddings_job(tmp_path, emulator.url, BAD_DATA / "wrong_schema.parquet", inputs={"text": "body"})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    failures = sorted(failure_records(tmp_path / "out"), key=lambda f: f["line"])
    assert [(f["line"], f"row {f['line']}" in f["message"]) for f in failures] == [(1, True), (2, True), (3, True)]
    assert emulator.stats()["requests"] == 0


AUDIO = "transcription" not in ENDPOINT_CLASSES


def audio_job(tmp_path: Path, url: str, folder: Path) -> Path:
    return write_job(tmp_path, url, "transcription", input_path=folder, inputs={"glob": "**/*.{wav,mp3,flac}"},
                     service={"deployment": "whisper"})


@pytest.mark.skipif(AUDIO, reason="no transcription endpoint in pipeline/endpoints")
def test_folder_without_matching_files_exits_2(tmp_path: Path, emulator: EmulatorThread) -> None:
    proc = run_cli("run", str(audio_job(tmp_path, emulator.url, BAD_DATA / "empty_folder")), "-q")
    assert_refused_before_any_request(proc, "empty", emulator)


@pytest.mark.skipif(AUDIO, reason="no transcription endpoint in pipeline/endpoints")
def test_zero_byte_and_mislabeled_audio_fail_before_upload(tmp_path: Path, emulator: EmulatorThread) -> None:
    result = run_job(load_spec(audio_job(tmp_path, emulator.url, BAD_DATA / "audio_bad")))
    assert result.exit_code == 1
    failures = {f["id"]: f["message"] for f in failure_records(tmp_path / "out")}
    assert sorted(failures) == ["mislabeled.mp3", "mislabeled.wav", "zero.wav"]
    assert "empty (0 bytes)" in failures["zero.wav"]
    assert "not mp3 audio" in failures["mislabeled.mp3"] and "not wav audio" in failures["mislabeled.wav"]
    assert sorted(r["id"] for r in read_dataset(tmp_path / "out" / "results")) == ["good.wav", "sub/good2.flac"]
    assert emulator.stats()["requests"] == 2  # the broken files never left the machine


def test_a_resumed_run_does_not_retry_bad_rows_unless_asked(tmp_path: Path, emulator: EmulatorThread) -> None:
    rows = [{"id": "a", "text": "fine"}, {"id": "b", "text": ""}, {"id": "c", "text": "fine too"}]
    spec = embeddings_job(tmp_path, emulator.url, write_rows(tmp_path / "in.jsonl", rows))
    assert run_job(load_spec(spec)).exit_code == 1
    requests = emulator.stats()["requests"]
    again = run_job(load_spec(spec))
    assert again.exit_code == 1 and emulator.stats()["requests"] == requests  # "b" still stands failed
    assert again.summary["rows_failed_earlier"] == 1 and "--retry-failed" in (again.message or "")
    assert json.loads((tmp_path / "out" / "job.json").read_text())["last_summary"]["rows_skipped"] == 3
