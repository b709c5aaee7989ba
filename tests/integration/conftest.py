"""Integration fixtures: an emulator on 127.0.0.1 in a background thread, job spec writing, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig()) as server:
        yield server


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def write_job(folder: Path, url: str, endpoint: str = "embeddings", *, input_path: Path,
              inputs: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, service: dict[str, Any] | None = None,
              output: dict[str, Any] | None = None, name: str = "job") -> Path:
    """A job spec pointing at a running emulator (provider emulator, base_url = its URL)."""
    sections: dict[str, dict[str, Any]] = {
        "input": {"path": str(input_path), "id": "id", **(inputs or {"text": "text"})},
        "output": {"path": str(folder / "out"), "flush_rows": 50, "flush_seconds": 0.5, **(output or {})},
        "service": {"provider": "emulator", "base_url": url, "deployment": "text-embedding-3-small",
                    **(service or {})},
        "limits": {"concurrency": 8, "max_attempts": 5, "timeout_s": 5, "max_retry_wait_s": 2, **(limits or {})},
        "params": params or {},
    }
    lines = [f'name = "{name}"', f'endpoint = "{endpoint}"']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
    spec = folder / f"{name}.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def corpus(n: int, prefix: str = "passage") -> list[dict[str, Any]]:
    return [{"id": f"r{i:05d}", "text": f"{prefix} number {i} about the standard library"} for i in range(n)]


def read_dataset(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists() or not any(folder.glob("part-*.parquet")):
        return []
    return ds.dataset(str(folder), format="parquet").to_table().to_pylist()


def result_ids(out: Path) -> list[str]:
    return [r["id"] for r in read_dataset(out / "results")]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
