"""Jobs on a local Ray cluster: one quota across workers, a worker killed, the driver interrupted and
killed, local and Ray runs resuming each other, every endpoint kind. Workers send real HTTP to an
emulator on 127.0.0.1; kills are real (SIGKILL of a worker process through the crash hook, of the driver
by the test)."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.crashpoints import CrashPlan
from pipeline.runner import RunOptions, run_job
from pipeline.sinks.parquet import PART_NAME
from pipeline.spec import load_spec

from ..integration.conftest import ROOT, corpus, read_dataset, result_ids, run_cli, start_cli, write_job, write_rows
from ..integration.test_crash_resume import wait_for_parts

ROWS = 400


def job(tmp_path: Path, url: str, rows: int = ROWS, **limits: int) -> Path:
    return write_job(tmp_path, url, input_path=write_rows(tmp_path / "in.jsonl", corpus(rows)),
                     limits={"batch_size": 1, "concurrency": 8, **limits},
                     output={"flush_rows": 20, "flush_seconds": 0.3})


def on_ray(workers: int = 4, **options: object) -> RunOptions:
    return RunOptions(executor="ray", workers=workers, **options)  # type: ignore[arg-type]


def assert_exactly_once(out: Path, rows: int = ROWS) -> None:
    ids = result_ids(out)
    repeated = [i for i, c in Counter(ids).items() if c > 1]
    assert not repeated, repeated[:5]
    assert sorted(ids) == [f"r{i:05d}" for i in range(rows)]
    assert not list(out.rglob("*.tmp"))


def part_tags(out: Path) -> Counter[str]:
    """Rows per writer: part-<tag>-N.parquet of a shard's attempt ('' for a local run's parts)."""
    tags: Counter[str] = Counter()
    for part in (out / "results").glob("part-*.parquet"):
        match = PART_NAME.match(part.name)
        assert match, part.name
        tags[match.group(1) or ""] += pq.read_metadata(part).num_rows
    return tags


def test_four_workers_share_one_quota(tmp_path: Path, emulator, ray_driver: str) -> None:
    """Four workers each pacing alone would send four times the quota: every one of them at 40 requests/s
    against a 40/s window. Through the shared keeper they stay under it together."""
    emulator.configure(rpm=3000, window_s=1.0, latency_ms=20)
    spec = job(tmp_path, emulator.url, rows=240, concurrency=16, requests_per_minute=3000)
    result = run_job(load_spec(spec), on_ray(4))
    assert result.exit_code == 0, result.message
    stats = emulator.stats()
    assert stats["throttled"] <= 0.01 * stats["requests"], stats["throttled"]
    assert_exactly_once(tmp_path / "out", rows=240)
    tags = part_tags(tmp_path / "out")
    assert len(tags) == 4 and all(rows > 30 for rows in tags.values()), tags  # four shards, each did its part
    assert result.summary["rows_succeeded"] == 240 == result.summary["requests"]


def test_a_429_seen_by_one_worker_holds_them_all(tmp_path: Path, emulator, ray_driver: str) -> None:
    """A quota lower than the spec says: the 429s one worker meets slow the others down too, so the run
    ends with a handful of 429s, not one storm per worker."""
    emulator.configure(rpm=1800, window_s=1.0, latency_ms=20)
    spec = job(tmp_path, emulator.url, rows=120, concurrency=16, requests_per_minute=3600)
    result = run_job(load_spec(spec), on_ray(4))
    assert result.exit_code == 0, result.message
    assert_exactly_once(tmp_path / "out", rows=120)
    assert emulator.stats()["throttled"] <= 30, emulator.stats()["throttled"]


def test_a_worker_killed_mid_shard_is_retried_and_skips_what_it_committed(tmp_path: Path, emulator,
                                                                        ray_driver: str) -> None:
    emulator.configure(latency_ms=20)
    spec = job(tmp_path, emulator.url)
    # Shard 0's first attempt dies (SIGKILL) just after its second part is renamed.
    result = run_job(load_spec(spec), on_ray(4, crash_plan=CrashPlan.parse("part.renamed:2")))
    assert result.exit_code == 0, result.message
    assert_exactly_once(tmp_path / "out")
    first_shard = {tag: rows for tag, rows in part_tags(tmp_path / "out").items() if tag.startswith("s000")}
    assert len(first_shard) == 2, first_shard  # the dead attempt's parts and its retry's
    # The retry skipped exactly what the dead attempt had committed (its two parts).
    assert result.summary["rows_skipped"] in first_shard.values() and result.summary["rows_skipped"] > 0
    redone = emulator.stats()["requests"] - ROWS
    assert 0 <= redone <= 20 + 2 + 2, redone  # at most a flush window and the worker's requests in flight


def test_interrupted_then_killed_driver_resumes_exactly_once(tmp_path: Path, emulator, ray_driver: str) -> None:
    emulator.configure(latency_ms=60)
    spec = job(tmp_path, emulator.url)
    out = tmp_path / "out"
    cluster = ["--executor", "ray", "--address", ray_driver, "--workers", "4", "-q"]
    # Ctrl-C: the workers finish what is in flight and commit; the driver exits 130.
    proc = start_cli("run", str(spec), *cluster)
    wait_for_parts(out, 2, timeout=60)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    interrupted = len(result_ids(out))
    assert 0 < interrupted < ROWS
    assert not (out / "lock").exists()
    time.sleep(0.5)
    assert len(result_ids(out)) == interrupted  # no worker went on after the driver ended
    # kill -9 of the driver: Ray ends its workers; the rerun resumes.
    proc = start_cli("run", str(spec), *cluster)
    wait_for_parts(out, len(list((out / "results").glob("*.parquet"))) + 2, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), *cluster)
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(out)
    status = json.loads(run_cli("status", str(spec), "--json").stdout)
    assert (status["done"], status["failed"], status["remaining"]) == (ROWS, 0, 0)


def test_local_and_ray_runs_resume_each_other(tmp_path: Path, emulator, ray_driver: str) -> None:
    spec = load_spec(job(tmp_path, emulator.url))
    assert run_job(spec, RunOptions(limit=100)).exit_code == 0  # locally
    on_cluster = run_job(spec, on_ray(3, limit=150))
    assert on_cluster.exit_code == 0, on_cluster.message
    assert on_cluster.summary["rows_succeeded"] == 150 and on_cluster.summary["rows_skipped"] >= 100
    rest = run_job(spec, RunOptions())  # and back
    assert rest.summary["rows_succeeded"] == ROWS - 250, rest.summary
    assert_exactly_once(tmp_path / "out")
    assert read_dataset(tmp_path / "out" / "failures") == []


# One job per endpoint kind (chat-messages, chat-classify and translate-audio add no kind of their own).
JOBS = ["embed-corpus", "chat-questions", "completions-docstrings", "responses-questions", "images-catalogue",
        "speech-voices", "transcribe-audio"]


@pytest.mark.parametrize("name", JOBS)
def test_every_endpoint_kind_runs_on_ray(tmp_path: Path, ray_driver: str, monkeypatch: pytest.MonkeyPatch,
                                         name: str) -> None:
    """The shipped jobs on the built-in emulator (started by the driver, reached by the workers)."""
    monkeypatch.chdir(ROOT)
    spec = load_spec(ROOT / "jobs" / f"{name}.toml")
    spec = dataclasses.replace(spec, output=dataclasses.replace(spec.output, path=tmp_path / "out"))
    result = run_job(spec, on_ray(2, limit=6))
    assert result.exit_code == 0, result.message
    ids = [r["id"] for r in read_dataset(tmp_path / "out" / "results")]
    assert len(ids) == len(set(ids)) == min(6, result.summary["rows_total"]) == result.summary["rows_succeeded"]


def test_cluster_options_without_the_ray_executor_are_refused(tmp_path: Path) -> None:
    spec = write_job(tmp_path, "http://127.0.0.1:9", input_path=write_rows(tmp_path / "in.jsonl", corpus(2)))
    run = run_cli("run", str(spec), "--workers", "4")
    assert run.returncode == 2 and "--executor ray" in run.stderr and "Traceback" not in run.stderr
