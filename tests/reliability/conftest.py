"""Reliability fixtures: an emulator per test, and the exactly-once check every test ends with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread

from ..integration.conftest import read_dataset

BAD_DATA = Path(__file__).resolve().parents[1] / "data" / "bad"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig()) as server:
        yield server


def closed_ids(folder: Path) -> list[str]:
    """Ids of every closed part, each part read on its own: a damaged part fails the test here."""
    ids: list[str] = []
    for part in sorted(folder.glob("part-*.parquet")):
        ids += pq.read_table(part, columns=["id"]).column("id").to_pylist()
    return ids


def assert_no_duplicates(out: Path) -> list[str]:
    """What a crash may leave: fewer ids, never a repeated id or an unreadable closed part."""
    ids = closed_ids(out / "results")
    repeated = [i for i, c in Counter(ids).items() if c > 1]
    assert not repeated, f"ids committed twice: {repeated[:5]}"
    return ids


def assert_exactly_once(out: Path, expected: list[str]) -> None:
    """Every expected id in exactly one closed result part, nothing else, and no temp file left."""
    ids = assert_no_duplicates(out)
    missing = sorted(set(expected) - set(ids))
    assert not missing, f"{len(missing)} ids never committed: {missing[:5]}"
    assert sorted(ids) == sorted(expected)
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))


def failure_records(out: Path) -> list[dict]:
    return read_dataset(out / "failures")
