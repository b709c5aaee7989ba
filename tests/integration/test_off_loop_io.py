"""Blocking input I/O runs off the event loop (issue 13, finding 8): a read that waits holds the reader thread,
while the workers go on answering the rows read before it, and a stop does not wait for that read.

Each test blocks one read for real (a FIFO with no writer yet, or a source whose read of one row waits on an
event) until the test has seen answers come back; on the loop, no answer could come back in the meantime."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import preflight as preflight_module
from pipeline.client.transport import build_form, read_parts
from pipeline.emulator.server import EmulatorThread
from pipeline.endpoints.base import FormPart
from pipeline.events import Done, Event
from pipeline.runner import RunControl, RunOptions, run_job, run_job_async
from pipeline.sources.base import Row, Source
from pipeline.spec import load_spec

from .conftest import read_dataset, result_ids, write_job, write_rows

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                       "AAAABJRU5ErkJggg==")  # one pixel
ROWS = 20
# The row whose read blocks: after the rows preflight samples (5) and after more rows than the queue and the
# workers hold (2 x 2 + 2 at concurrency 2), so on the loop the read would block before most answers came.
BLOCKED_LINE = 13
ANSWERS_BEFORE = BLOCKED_LINE - 1
WAIT_S = 5.0  # how long a blocked read waits at most: the old code then gets going again, late


def chat_job(tmp_path: Path, url: str, rows: list[dict[str, Any]], inputs: dict[str, Any]) -> Path:
    return write_job(tmp_path, url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows), inputs=inputs,
                     service={"deployment": "gpt-4o-mini"}, limits={"concurrency": 2}, params={"max_tokens": 8})


def questions(n: int = ROWS) -> list[dict[str, Any]]:
    return [{"id": f"r{i:03d}", "text": f"question {i}"} for i in range(n)]


class Answers:
    """Counts answered rows from the run's events; `reached` is set once `target` rows are answered."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.rows = 0
        self.reached = threading.Event()

    def on_event(self, event: Event) -> None:
        if isinstance(event, Done):
            self.rows += event.rows
            if self.rows >= self.target:
                self.reached.set()


def write_fifo_when(ready: threading.Event, fifo: Path, data: bytes, seen: list[bool]) -> threading.Thread:
    """A writer for `fifo` once `ready` is set (or WAIT_S passed): until then, whoever reads it waits."""

    def run() -> None:
        seen.append(ready.wait(WAIT_S))
        deadline = time.monotonic() + 30
        while True:  # non-blocking open: fails until the reader has opened its end
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_workers_answer_while_an_image_read_blocks(tmp_path: Path, emulator: EmulatorThread) -> None:
    """A vision row's image is a FIFO nobody writes to yet: the rows before it are answered meanwhile."""
    picture, slow = tmp_path / "picture.png", tmp_path / "slow.png"
    picture.write_bytes(PNG)
    os.mkfifo(slow)
    rows = [{**row, "image": str(slow if i == BLOCKED_LINE - 1 else picture)} for i, row in enumerate(questions())]
    spec = chat_job(tmp_path, emulator.url, rows, {"prompt": "text", "image": "image"})
    answers, seen = Answers(ANSWERS_BEFORE), []
    writer = write_fifo_when(answers.reached, slow, PNG, seen)
    result = run_job(load_spec(spec), RunOptions(on_event=answers.on_event))
    writer.join(timeout=10)
    assert seen == [True], "no answers came back while the image read was blocked"
    assert result.exit_code == 0, result.message
    assert sorted(result_ids(tmp_path / "out")) == [r["id"] for r in rows]


class GatedSource:
    """The job's own source, whose read of one row waits for `gate` (at most WAIT_S): a slow disk or object
    store. Preflight's sample of the first rows never gets that far."""

    def __init__(self, source: Source, gate: threading.Event) -> None:
        self.path = source.path
        self._source = source
        self.gate = gate
        self.waiting = False

    def rows(self) -> Iterator[Row]:
        for row in self._source.rows():
            if row.line == BLOCKED_LINE and not self.gate.is_set():
                self.waiting = True
                self.gate.wait(WAIT_S)
                self.waiting = False
            yield row

    def ids(self) -> Iterator[tuple[str, int]]:
        return self._source.ids()

    def count(self) -> int:
        return self._source.count()

    def columns(self) -> list[str] | None:
        return self._source.columns()


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GatedSource]]:
    """Every run's source wrapped in a GatedSource (all sharing one gate), opened at the end of the test."""
    opened: list[GatedSource] = []
    gate = threading.Event()
    real = preflight_module.open_source

    def open_gated(*args: Any, **kwargs: Any) -> GatedSource:
        opened.append(GatedSource(real(*args, **kwargs), gate))
        return opened[-1]

    monkeypatch.setattr(preflight_module, "open_source", open_gated)
    try:
        yield opened
    finally:
        gate.set()


def test_workers_answer_while_a_source_read_blocks(tmp_path: Path, emulator: EmulatorThread,
                                                   gated: list[GatedSource]) -> None:
    spec = chat_job(tmp_path, emulator.url, questions(), {"prompt": "text"})
    answers = Answers(ANSWERS_BEFORE)
    seen: list[bool] = []

    def open_gate_after_answers() -> None:
        seen.append(answers.reached.wait(WAIT_S))
        gated[-1].gate.set()

    opener = threading.Thread(target=open_gate_after_answers, daemon=True)
    opener.start()
    result = run_job(load_spec(spec), RunOptions(on_event=answers.on_event))
    opener.join(timeout=10)
    assert seen == [True], "no answers came back while the source read was blocked"
    assert result.exit_code == 0, result.message
    assert sorted(result_ids(tmp_path / "out")) == [r["id"] for r in questions()]


async def test_a_stop_does_not_wait_for_a_blocked_read(tmp_path: Path, emulator: EmulatorThread,
                                                       gated: list[GatedSource]) -> None:
    """Stopped while the source read is blocked: the run ends at once with what was answered; a rerun
    (the read no longer blocked) does the rest, each row once."""
    spec = chat_job(tmp_path, emulator.url, questions(), {"prompt": "text"})
    control, answers = RunControl(), Answers(ANSWERS_BEFORE)
    stop: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        answers.on_event(event)
        if answers.reached.is_set() and not stop:
            stop.update(at=time.monotonic(), read_blocked=gated[-1].waiting)
            control.stop("stopped by the test")

    result = await run_job_async(load_spec(spec), RunOptions(on_event=on_event), control)
    ended = time.monotonic()
    assert stop["read_blocked"], "the answers only came back once the blocked read had ended"
    assert ended - stop["at"] < 4.0  # not the drain deadline (10 s), nor the read's wait (5 s)
    assert result.exit_code == 130, result.message
    assert len(result_ids(tmp_path / "out")) == ANSWERS_BEFORE
    gated[-1].gate.set()
    again = await run_job_async(load_spec(spec))
    assert again.exit_code == 0, again.message
    assert sorted(result_ids(tmp_path / "out")) == [r["id"] for r in questions()]
    assert not read_dataset(tmp_path / "out" / "failures")


async def test_a_file_part_is_opened_off_the_loop(tmp_path: Path) -> None:
    """The upload of a local file (transcription) opens it off the loop: on a network disk the open waits."""
    fifo = tmp_path / "clip.wav"
    os.mkfifo(fifo)
    parts = [FormPart("file", path=str(fifo), filename="clip.wav", content_type="audio/wav")]
    released, seen = threading.Event(), []
    writer = write_fifo_when(released, fifo, b"RIFF", seen)

    async def form() -> Any:  # what send_once does for each attempt
        return build_form(await read_parts(parts))

    building = asyncio.ensure_future(form())
    ticks = 0
    while not building.done() and ticks < 5:
        await asyncio.sleep(0.05)
        ticks += 1
    released.set()
    assert ticks == 5, "the loop stood still while the file was opened"
    data = await asyncio.wait_for(building, WAIT_S)
    writer.join(timeout=10)
    [(_, _, handle)] = data._fields
    assert handle.read() == b"RIFF"
    handle.close()
