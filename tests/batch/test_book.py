"""batches.json: saved whole, read back, strays removed, summarised for `pipeline status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.batch import batch_summary, summary_lines
from pipeline.batch.book import BatchBook
from pipeline.batch.lines import InputFileWriter
from pipeline.errors import PipelineError


def test_records_survive_a_reload_and_unknown_keys_are_ignored(tmp_path: Path) -> None:
    book = BatchBook(tmp_path)
    record = book.add(book.next_number(), 10, 1234)
    record.batch_id, record.status = "batch_1", "in_progress"
    book.save()
    data = json.loads((tmp_path / "batches.json").read_text())
    data["batches"][0]["from_a_newer_version"] = True
    (tmp_path / "batches.json").write_text(json.dumps(data))
    again = BatchBook(tmp_path)
    assert [(r.number, r.batch_id, r.status, r.lines) for r in again.records] == [(1, "batch_1", "in_progress", 10)]
    assert again.next_number() == 2 and not list(tmp_path.glob("*.tmp"))


def test_open_ids_come_from_the_sidecars_of_uncollected_batches(tmp_path: Path) -> None:
    book = BatchBook(tmp_path)
    writer = InputFileWriter(book.folder, 1, max_lines=2, max_bytes=10**6)
    files = [writer.add({"id": f"r{i}", "line": i}, b"{}\n") for i in range(4)] + [writer.close()]
    for f in filter(None, files):
        book.add(f.number, f.lines, f.bytes)
    book.records[0].collected = True
    assert book.open_ids() == {"r2", "r3"}


def test_stray_files_of_unrecorded_batches_are_removed(tmp_path: Path) -> None:
    book = BatchBook(tmp_path)
    book.folder.mkdir()
    book.add(1, 1, 1)
    for name in ("input-000001.jsonl", "input-000001.ids.jsonl", "input-000002.jsonl", "input-000002.ids.jsonl"):
        (book.folder / name).write_text("{}\n")
    assert book.remove_strays() == 2
    assert sorted(p.name for p in book.folder.iterdir()) == ["input-000001.ids.jsonl", "input-000001.jsonl"]


def test_summary_for_status(tmp_path: Path) -> None:
    assert batch_summary(tmp_path) == []
    book = BatchBook(tmp_path)
    done = book.add(1, 5, 100)
    done.batch_id, done.status, done.collected = "batch_a", "completed", True
    done.request_counts = {"total": 5, "completed": 4, "failed": 1}
    running = book.add(2, 3, 60)
    running.batch_id, running.status = "batch_b", "in_progress"
    book.save()
    summary = batch_summary(tmp_path)
    assert [(s["batch_id"], s["status"], s["service_status"]) for s in summary] == [
        ("batch_a", "collected", "completed"), ("batch_b", "in_progress", "in_progress")]
    text = summary_lines(summary)
    assert "batch 1 batch_a: collected (completed), 4+1 failed of 5 lines" in text[0]


def test_an_unreadable_state_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "batches.json").write_text("{not json")
    with pytest.raises(PipelineError, match=r"batches\.json: unreadable"):
        BatchBook(tmp_path)
