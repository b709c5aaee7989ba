"""Batch-mode fixtures: an emulator in a thread, its batch knobs and counters, chat job specs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread
from tests.integration.conftest import read_dataset, run_cli, start_cli, write_job, write_rows

__all__ = ["batch_counters", "batch_settings", "chat_job", "chat_rows", "read_dataset", "run_cli", "start_cli",
           "write_job", "write_rows"]

BATCH_SERVICE = {"deployment": "gpt-4o-mini", "mode": "batch", "poll_interval_s": 0.05}


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig()) as server:
        yield server


def batch_settings(emulator: EmulatorThread, **settings: Any) -> dict[str, Any]:
    """Change the emulator's BatchSettings over HTTP (as a test in another process would)."""
    request = urllib.request.Request(emulator.url + "/_emulator/batches", data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def batch_counters(emulator: EmulatorThread) -> dict[str, int]:
    return emulator.get_json("/_emulator/batches")["counters"]


def chat_rows(n: int, extra: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Rows r0000..; `extra` appends text to some rows' prompts (markers)."""
    extra = extra or {}
    return [{"id": f"r{i:04d}", "text": f"question {i} about sorting lists {extra.get(i, '')}".strip()}
            for i in range(n)]


def chat_job(folder: Path, url: str, rows: list[dict[str, Any]], *, service: dict[str, Any] | None = None,
             output: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
             name: str = "job") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_job(folder, url, "chat", input_path=write_rows(folder / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={**BATCH_SERVICE, **(service or {})},
                     params={"max_tokens": 30, "seed": 3}, output=output, limits=limits, name=name)
