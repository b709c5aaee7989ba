"""The Python API as notebooks, async apps and Airflow use it: inside a running event loop, with the
caller's own log handlers, events on the caller's thread, and the same exit codes as the CLI."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pipeline.emulator.server import EmulatorThread
from pipeline.runner import RunOptions, run_job, run_job_async
from pipeline.spec import load_spec

from .conftest import corpus, result_ids, write_job, write_rows


def small_job(tmp_path: Path, url: str, rows: int = 30, **extra: Any) -> Path:
    return write_job(tmp_path, url, input_path=write_rows(tmp_path / "in.jsonl", corpus(rows)),
                     limits={"batch_size": 4}, **extra)


async def test_run_job_inside_a_running_loop(tmp_path: Path, emulator: EmulatorThread) -> None:
    """A notebook cell: a loop is running, and the plain run_job is called anyway."""
    threads: set[int] = set()
    spec = small_job(tmp_path, emulator.url)
    result = run_job(load_spec(spec), RunOptions(on_event=lambda event: threads.add(threading.get_ident())))
    assert result.exit_code == 0, result.message
    assert sorted(result_ids(tmp_path / "out")) == sorted(r["id"] for r in corpus(30))
    assert threads == {threading.get_ident()}  # callbacks came back to the caller's thread


async def test_run_job_async_on_the_callers_loop(tmp_path: Path, emulator: EmulatorThread) -> None:
    threads: set[int] = set()
    ticker = asyncio.create_task(asyncio.sleep(3600))  # the caller's own work keeps running beside the job
    spec = small_job(tmp_path, emulator.url)
    result = await run_job_async(load_spec(spec),
                                 RunOptions(on_event=lambda event: threads.add(threading.get_ident())))
    assert result.exit_code == 0 and result.summary["rows_succeeded"] == 30
    assert threads == {threading.get_ident()} and not ticker.done()
    ticker.cancel()


def test_batch_mode_events_on_the_callers_thread(tmp_path: Path, emulator: EmulatorThread) -> None:
    """Batch input files are written on the writer thread; bad rows found there are still reported here."""
    rows = [*corpus(6), {"id": "bad", "text": ""}]
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, params={"max_tokens": 20},
                     service={"deployment": "gpt-4o-mini", "mode": "batch", "poll_interval_s": 0.05})
    seen: list[tuple[str, int]] = []
    options = RunOptions(on_event=lambda event: seen.append((event.kind, threading.get_ident())))
    result = run_job(load_spec(spec), options)
    assert result.exit_code == 1 and result.summary["rows_failed"] == 1, result.message
    assert result.summary["rows_succeeded"] == 6
    assert ("failed", threading.get_ident()) in seen
    assert {thread for _, thread in seen} == {threading.get_ident()}


@pytest.fixture
def echoing_gateway() -> Iterator[str]:
    """A gateway that echoes the request's api-key: in a 500's message, and in a 200 that is no answer."""
    async def echo(request: web.Request) -> web.Response:
        key = request.headers.get("api-key", "")
        if "number 1 " in await request.text():
            return web.json_response({"echo": f"upstream saw key {key}"})
        return web.json_response({"error": {"message": f"upstream refused key {key} (api-key={key})"}}, status=500)

    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


class Captured(logging.Handler):
    """The caller's own handler: no filter of ours on it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(logging.Formatter("%(message)s").format(record))


def test_library_callers_logs_and_errors_are_masked(tmp_path: Path, echoing_gateway: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-LIBLEAK-5e6f7a8b9c"
    monkeypatch.setenv("LIB_KEY", secret)
    handler = Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    pipeline_logger = logging.getLogger("pipeline")
    propagate, level = pipeline_logger.propagate, pipeline_logger.level
    pipeline_logger.propagate, pipeline_logger.level = True, logging.DEBUG  # as a fresh host process has it
    try:
        spec = write_job(tmp_path, echoing_gateway, input_path=write_rows(tmp_path / "in.jsonl", corpus(3)),
                         limits={"max_attempts": 2, "max_retry_wait_s": 0.1, "batch_size": 1},
                         service={"auth": "api-key", "api_key_env": "LIB_KEY"})
        # Response bodies at debug level, as --log-bodies does.
        result = run_job(load_spec(spec), RunOptions(log_bodies=True))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        pipeline_logger.propagate, pipeline_logger.level = propagate, level
    assert result.exit_code == 1
    assert any("upstream refused key" in text for text in handler.texts)  # the gateway's words were logged
    assert any("upstream saw key" in text for text in handler.texts)
    assert not [text for text in handler.texts if secret in text]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
