"""What operators rely on: status, export, failures, budget guards, summaries, progress, the lock."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.core.exitcodes import ExitCode
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from .conftest import ROOT, corpus, read_dataset, result_ids, run_cli, start_cli, write_job, write_rows


def half_done_job(tmp_path: Path, url: str) -> Path:
    rows = [*corpus(20), {"id": "bad", "text": "[[fault:400:always]]"}]
    spec = write_job(tmp_path, url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 1}, output={"keep": []})
    assert run_job(load_spec(spec), RunOptions(limit=11)).exit_code in (0, 1)
    return spec


def test_status_of_a_half_finished_job(tmp_path: Path, emulator) -> None:
    spec = half_done_job(tmp_path, emulator.url)
    proc = run_cli("status", str(spec), "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["total"] == 21 and status["done"] + status["failed"] + status["remaining"] == 21
    assert status["done"] == 11 and status["remaining"] == 10
    assert status["last_run"]["started"] and status["last_run"]["ended"]
    text = run_cli("status", str(tmp_path / "out")).stdout
    assert "done 11" in text
    assert emulator.stats()["requests"] == 11


def test_export_in_input_order_with_joined_columns(tmp_path: Path, emulator) -> None:
    rows = [{"id": f"k{9 - i}", "text": f"text {i}", "title": f"T{i}"} for i in range(10)]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 3, "concurrency": 4})
    assert run_cli("run", str(spec), "-q").returncode == 0
    for suffix in ("parquet", "jsonl", "csv"):
        target = tmp_path / f"export.{suffix}"
        proc = run_cli("export", str(spec), "--to", str(target), "--join", "title")
        assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "export.parquet")
    assert table["id"].to_pylist() == [r["id"] for r in rows]
    assert table["title"].to_pylist() == [r["title"] for r in rows]
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in rows]
    assert (tmp_path / "export.csv").read_text().splitlines()[1].startswith('"k9"')


def test_failures_command_lists_and_exports(tmp_path: Path, emulator) -> None:
    rows = [*corpus(3), {"id": "bad", "text": "[[fault:422:always]]"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 1})
    assert run_cli("run", str(spec), "-q").returncode == 1
    listed = run_cli("failures", str(spec))
    assert "bad" in listed.stdout and "422" in listed.stdout
    assert run_cli("failures", str(spec), "--to", str(tmp_path / "f.jsonl")).returncode == 0
    assert json.loads((tmp_path / "f.jsonl").read_text())["status"] == 422


def test_budget_guards_stop_cleanly_and_resume(tmp_path: Path, emulator) -> None:
    data = write_rows(tmp_path / "in.jsonl", corpus(30))
    spec = write_job(tmp_path, emulator.url, input_path=data, limits={"batch_size": 2, "max_rows": 10})
    result = run_job(load_spec(spec))
    assert result.exit_code == ExitCode.BUDGET and "max_rows" in (result.message or "")
    assert len(result_ids(tmp_path / "out")) == 10
    spec = write_job(tmp_path, emulator.url, input_path=data, limits={"batch_size": 2})
    assert run_job(load_spec(spec)).exit_code == 0
    assert sorted(result_ids(tmp_path / "out")) == sorted(r["id"] for r in corpus(30))


def test_max_tokens_guard(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(40)),
                     limits={"batch_size": 1, "concurrency": 1, "max_tokens": 50})
    result = run_job(load_spec(spec))
    assert result.exit_code == ExitCode.BUDGET
    assert 0 < len(result_ids(tmp_path / "out")) < 40


def test_summary_matches_what_the_emulator_served(tmp_path: Path, emulator) -> None:
    rows = [*corpus(12), {"id": "flaky", "text": "[[fault:503:2]]"}, {"id": "blocked", "text": "BLOCKME please"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 1})
    summary_file = tmp_path / "summary.json"
    proc = run_cli("run", str(spec), "-q", "--summary-json", str(summary_file))
    assert proc.returncode == 1
    summary = json.loads(summary_file.read_text())
    served = emulator.stats()
    assert summary["rows_succeeded"] == 13 and summary["rows_failed"] == 1
    assert summary["requests"] + sum(summary["retries"].values()) == served["requests"]
    assert summary["retries"] == {"5xx": 2}
    assert served["by_status"]["200"] == 13
    job = json.loads((tmp_path / "out" / "job.json").read_text())
    assert job["last_summary"]["rows_succeeded"] == 13


def test_plain_progress_lines_off_a_terminal(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=40)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(60)),
                     limits={"batch_size": 1, "concurrency": 2})
    proc = run_cli("run", str(spec), "--progress-every", "0.3")
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if "rows/s" in line]
    assert len(lines) >= 2 and "\r" not in proc.stderr
    assert "rows: 60 succeeded" in proc.stderr


def test_live_progress_on_a_terminal(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=40)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(60)),
                     limits={"batch_size": 1, "concurrency": 2})
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(spec)], stdout=subprocess.DEVNULL,
                            stderr=slave, cwd=ROOT)
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 20)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    proc.wait(timeout=20)
    os.close(master)
    assert proc.returncode == 0
    assert b"\r\x1b[2K" in screen and b"rows/s" in screen and b"ETA" in screen


def test_lock_refuses_a_second_run_and_takes_over_a_dead_one(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=50)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(80)),
                     limits={"batch_size": 1, "concurrency": 2})
    first = start_cli("run", str(spec), "-q")
    deadline = time.monotonic() + 10
    while not (tmp_path / "out" / "lock").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = run_cli("run", str(spec), "-q")
    assert second.returncode == ExitCode.LOCKED
    assert f"pid {first.pid}" in second.stderr and "started" in second.stderr
    first.kill()
    first.wait()
    emulator.configure(latency_ms=0)
    third = run_cli("run", str(spec), "-q", "--log-level", "warning")
    assert third.returncode == 0, third.stderr
    assert "took over a stale lock" in third.stderr
    assert sorted(result_ids(tmp_path / "out")) == sorted(r["id"] for r in corpus(80))
    assert read_dataset(tmp_path / "out" / "failures") == []


def test_retry_failed_sends_earlier_failures_again(tmp_path: Path, emulator) -> None:
    rows = [*corpus(4), {"id": "once", "text": "[[fault:400:1]] fails the first time only"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 1})
    assert run_cli("run", str(spec), "-q").returncode == 1
    again = run_cli("run", str(spec), "-q")
    # Earlier failures are left alone without --retry-failed, and the exit code still says they stand:
    # cron and Airflow read only that.
    assert again.returncode == 1
    assert "1 row(s) failed in earlier runs" in again.stderr and "--retry-failed" in again.stderr
    assert "once" not in result_ids(tmp_path / "out")
    assert run_cli("run", str(spec), "-q", "--retry-failed").returncode == 0
    assert sorted(result_ids(tmp_path / "out")) == sorted([*(r["id"] for r in corpus(4)), "once"])
    status = json.loads(run_cli("status", str(spec), "--json").stdout)
    assert (status["done"], status["failed"], status["remaining"]) == (5, 0, 0)


def test_json_logs_for_machines(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(3)))
    proc = run_cli("--log-format", "json", "--log-level", "debug", "run", str(spec), "-q")
    assert proc.returncode == 0
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("POST ") for r in records)
