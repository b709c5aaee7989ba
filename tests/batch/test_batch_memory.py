"""Collecting a batch in flat memory: the BatchIndex and IdHashes it rests on, exactly once over
repeated, foreign and unrun output lines and across batches, and Parquet parts written on one thread."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.batch.book import BatchBook, BatchIndex, BatchRecord, IdHashes
from pipeline.batch.engine import BatchJob
from pipeline.batch.lines import InputFileWriter
from pipeline.checkpoint import id_hash
from pipeline.preflight import preflight
from pipeline.runner import RunOptions, run_job
from pipeline.sinks.parquet import PartWriter
from pipeline.spec import load_spec

from .conftest import chat_job, chat_rows, read_dataset


def write_sidecar(book: BatchBook, number: int, entries: list[dict[str, Any]]) -> BatchRecord:
    writer = InputFileWriter(book.folder, number, max_lines=10**6, max_bytes=10**9)
    for entry in entries:
        writer.add(entry, b"{}\n")
    closed = writer.close()
    assert closed is not None
    return book.add(closed.number, closed.lines, closed.bytes)


def test_id_hashes_hold_ids_as_sorted_hashes() -> None:
    empty = IdHashes()
    assert len(empty) == 0 and "a" not in empty and not empty.has(id_hash("a"))
    assert empty.has_each(np.array([id_hash("a")], dtype=np.uint64)).tolist() == [False]
    ids = IdHashes(id_hash(f"r{i}") for i in range(1000))
    assert len(ids) == 1000 and "r0" in ids and "r999" in ids and "r1000" not in ids
    assert ids._sorted.nbytes == 8 * 1000
    more = ids.union(np.array([id_hash("x"), id_hash("r5")], dtype=np.uint64))
    assert len(more) == 1001 and "x" in more and "x" not in ids
    keys = np.array([id_hash(k) for k in ("r3", "nope", "x")], dtype=np.uint64)
    assert more.has_each(keys).tolist() == [True, False, True]


def test_batch_index_finds_rows_and_reads_entries_from_the_sidecar(tmp_path: Path) -> None:
    book = BatchBook(tmp_path)
    entries = [{"id": f"r{i}", "line": i + 1, **({"keep": {"topic": f"t{i}"}} if i % 2 else {})} for i in range(500)]
    entries.append({"id": "r7", "line": 999})  # a repeated id counts once: its first entry
    record = write_sidecar(book, 1, entries)
    with book.index(record) as index:
        assert len(index) == 500
        assert index.hashes.nbytes + index.offsets.nbytes + len(index.seen) == 17 * 500  # no per-row objects
        assert index.find(id_hash("nope")) == -1
        for i in (0, 7, 499, 250):
            assert index.entry(index.find(id_hash(f"r{i}"))) == entries[i]
        for i in range(0, 500, 2):
            index.seen[index.find(id_hash(f"r{i}"))] = 1
        assert index.any_seen()
        assert sorted(index.seen_hashes().tolist()) == sorted(id_hash(f"r{i}") for i in range(0, 500, 2))
        skip = IdHashes([id_hash("r1"), id_hash("r3")])
        assert [e["id"] for _, e in index.unseen(skip)] == [f"r{i}" for i in range(5, 500, 2)]  # in sidecar order
    assert index._handle is None


def test_an_empty_sidecar_gives_an_empty_index(tmp_path: Path) -> None:
    (tmp_path / "empty.ids.jsonl").write_bytes(b"")
    index = BatchIndex(tmp_path / "empty.ids.jsonl")
    assert len(index) == 0 and index.find(1) == -1 and not index.any_seen()
    assert list(index.unseen(IdHashes())) == []


def chat_line(custom_id: str, text: str = "ok") -> dict[str, Any]:
    body = {"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    return {"custom_id": custom_id, "response": {"status_code": 200, "request_id": f"req-{custom_id}", "body": body}}


def error_line(custom_id: str, code: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "response": None, "error": {"code": code, "message": f"{code} here"}}


class FakeFiles:
    """The two BatchAPI calls _collect makes: download (of lines given per file id) and delete_file."""

    def __init__(self, files: dict[str, list[dict[str, Any] | str]]) -> None:
        self.files = files
        self.deleted: list[str] = []

    async def download(self, file_id: str, destination: Path) -> None:
        lines = [item if isinstance(item, str) else json.dumps(item) for item in self.files[file_id]]
        destination.write_text("\n".join(lines) + "\n")  # noqa: ASYNC240 (a fake service, tiny files)

    async def delete_file(self, file_id: str) -> None:
        self.deleted.append(file_id)


def test_collect_takes_each_row_exactly_once(tmp_path: Path) -> None:
    spec = load_spec(chat_job(tmp_path, "http://127.0.0.1:9", chat_rows(8), output={"keep": ["text"]}))
    plan = preflight(spec)
    job = BatchJob(spec, RunOptions(), plan, plan.out)
    entries = [{"id": f"r{i:04d}", "line": i + 1, "keep": {"text": f"question {i}"}} for i in range(6)]
    first = write_sidecar(job.book, 1, entries)
    first.status, first.output_file_id, first.error_file_id = "expired", "out-1", "err-1"
    api = FakeFiles({
        "out-1": [chat_line("r0000"), chat_line("r0000", "again"), chat_line("someone-else"), "not json",
                  chat_line("r0001")],
        "err-1": [error_line("r0001", "server_error"), error_line("r0002", "server_error"),
                  error_line("r0003", "batch_expired")],
    })
    # r0004 and r0005 have no line, r0003 did not run: they go again; r0001's error line comes after its answer
    second = write_sidecar(job.book, 2, [entries[0], entries[3], entries[4], entries[5]])
    second.status, second.output_file_id = "completed", "out-2"
    api.files["out-2"] = [chat_line("r0000", "third"), chat_line("r0003"), chat_line("r0004"), chat_line("r0005")]

    async def collect() -> None:
        await job._collect(api, first)  # type: ignore[arg-type]
        assert job.not_run == {"r0003", "r0004", "r0005"}
        job.not_run = set()
        await job._collect(api, second)  # type: ignore[arg-type]
        job.close()

    asyncio.run(collect())
    results = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    failures = {r["id"]: r for r in read_dataset(tmp_path / "out" / "failures")}
    assert sorted(results) == ["r0000", "r0001", "r0003", "r0004", "r0005"]
    assert results["r0000"]["content"] == "ok" and results["r0000"]["text"] == "question 0"
    assert sorted(failures) == ["r0002"] and failures["r0002"]["line"] == 3
    assert first.outcome == {"succeeded": 2, "failed": 1, "not_run": 3} and first.collected
    assert second.outcome == {"succeeded": 3, "not_run": 0}  # r0000 was written by the first batch
    assert not job.not_run and len(job.written) == 6
    assert not list(job.book.folder.iterdir()) and api.deleted == ["out-1", "err-1", "out-2"]


def test_parts_are_written_on_one_thread(tmp_path: Path, emulator, monkeypatch) -> None:
    threads: set[int] = set()
    write = PartWriter.write

    def recording(self: PartWriter, *args: Any) -> Any:
        threads.add(threading.get_ident())
        return write(self, *args)

    monkeypatch.setattr(PartWriter, "write", recording)
    spec = chat_job(tmp_path, emulator.url, chat_rows(40), output={"flush_rows": 3})
    assert run_job(load_spec(spec), RunOptions()).exit_code == 0
    assert len(read_dataset(tmp_path / "out" / "results")) == 40
    assert len(threads) == 1 and threading.get_ident() not in threads
