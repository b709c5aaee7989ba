"""Several deployments at once: shares follow headroom, a failing one cools down, a refusing one is dropped."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.emulator.server import EmulatorThread
from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, toml_value, write_rows


@pytest.fixture
def three() -> Iterator[list[EmulatorThread]]:
    servers = [EmulatorThread() for _ in range(3)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def multi_job(tmp_path: Path, servers: list[EmulatorThread], rows: int, rpm: int, **extra: dict) -> Path:
    data = write_rows(tmp_path / "in.jsonl", [{"id": f"q{i:03d}", "text": f"question {i}"} for i in range(rows)])
    lines = ['name = "multi"', 'endpoint = "chat"', "[input]", f'path = "{data}"', 'prompt = "text"', "[output]",
             f'path = "{tmp_path / "out"}"', "flush_seconds = 0.5", "[service]", 'provider = "emulator"',
             'deployment = "gpt-4o-mini"', "[limits]", "concurrency = 24", "timeout_s = 5", "max_attempts = 8",
             "max_retry_wait_s = 2", "[params]", "max_tokens = 10"]
    for index, server in enumerate(servers):
        entry = {"name": f"region-{index}", "base_url": server.url, "requests_per_minute": rpm,
                 **extra.get(f"region-{index}", {})}
        lines += ["[[service.deployments]]", *[f"{k} = {toml_value(v)}" for k, v in entry.items()]]
    spec = tmp_path / "multi.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def test_work_spreads_over_all_quotas(tmp_path: Path, three: list[EmulatorThread]) -> None:
    for server in three:
        server.configure(rpm=600, window_s=1.0)  # 10/s each
    result = run_job(load_spec(multi_job(tmp_path, three, rows=90, rpm=600)))
    assert result.exit_code == 0, result.message
    served = Counter(r["deployment"] for r in read_dataset(tmp_path / "out" / "results"))
    assert sum(served.values()) == 90
    assert all(served[f"region-{i}"] >= 18 for i in range(3)), served
    throttled = sum(s.stats()["by_status"].get("429", 0) for s in three)
    assert throttled <= 5


def test_a_failing_deployment_cools_down_and_others_take_over(tmp_path: Path, three: list[EmulatorThread]) -> None:
    for server in three:
        server.configure(latency_ms=20)
    timer = threading.Timer(0.5, lambda: three[0].configure(error_rate=1.0))
    timer.start()
    result = run_job(load_spec(multi_job(tmp_path, three, rows=150, rpm=1200)))
    timer.cancel()
    assert result.exit_code == 0, result.message
    served = Counter(r["deployment"] for r in read_dataset(tmp_path / "out" / "results"))
    assert sum(served.values()) == 150
    assert served["region-1"] + served["region-2"] > 100, served
    assert read_dataset(tmp_path / "out" / "failures") == []


def test_a_deployment_that_refuses_auth_is_dropped(tmp_path: Path, three: list[EmulatorThread],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    three[2].configure(api_key="another-key-entirely")
    result = run_job(load_spec(multi_job(tmp_path, three, rows=40, rpm=6000)))
    assert result.exit_code == 0, result.message
    served = Counter(r["deployment"] for r in read_dataset(tmp_path / "out" / "results"))
    assert sum(served.values()) == 40 and "region-2" not in served
    assert any("region-2 dropped" in r.getMessage() for r in caplog.records)


def test_attempts_held_by_a_throttling_deployment_move_to_the_others(tmp_path: Path,
                                                                     three: list[EmulatorThread]) -> None:
    """Region-0 turns to answering only 429s with a long retry-after: the attempts already waiting
    in its pacer go back to the Router instead of each waiting out the holds to earn one more 429."""
    for server in three:
        server.configure(rpm=600, window_s=1.0)
    switched = threading.Event()

    def throttle() -> None:
        three[0].configure(burst429_rate=1.0, fault_retry_after_ms=4000)
        switched.set()

    timer = threading.Timer(1.0, throttle)
    timer.start()
    result = run_job(load_spec(multi_job(tmp_path, three, rows=80, rpm=600)))  # 50 left at the switch
    timer.cancel()
    assert switched.is_set() and result.exit_code == 0, result.message
    served = Counter(r["deployment"] for r in read_dataset(tmp_path / "out" / "results"))
    assert sum(served.values()) == 80
    throttled = three[0].stats()["by_status"].get("429", 0)
    # Requests already sent when the first 429 comes back each earn one (on a loaded host, up to ~6 were
    # seen in flight); attempts that waited out the holds would earn one every 4 s for the whole run.
    assert throttled <= 8, f"region-0 answered {throttled} x 429: attempts kept waiting for it"
