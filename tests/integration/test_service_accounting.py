"""Pacing by the service's own accounting, against the emulator over HTTP: its token count (a
server charging 0.8x or 1.25x our estimate), and shared holds only on evidence about the quota.

These drive the client below the runner (ServiceClient with the Router `build_router` makes), so
the pacer the requests went through can be asked what it learned and how long it held everyone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from pipeline.client.limiter import Pacer
from pipeline.client.service import ServiceClient
from pipeline.emulator.testing import fault_marker
from pipeline.endpoints import endpoint_for
from pipeline.errors import APIError
from pipeline.runner import build_router
from pipeline.sources.base import Row
from pipeline.spec import load_spec

from .conftest import write_job, write_rows

TPM = 600_000  # 10,000 tokens a second: ~70 chat requests a second, enough samples in a short run


def questions(n: int, marked: int | None = None) -> list[dict[str, str]]:
    rows = [{"id": f"q{i}", "text": f"question {i}: name one prime number."} for i in range(n)]
    if marked is not None:
        rows[marked]["text"] += " " + fault_marker("429", "always")
    return rows


def send_all(spec_path: Path, rows: list[dict[str, str]]) -> tuple[Pacer, int]:
    """Send every row through one ServiceClient with the spec's concurrency; (its pacer, rows failed)."""
    spec = load_spec(spec_path)
    endpoint = endpoint_for(spec)
    router = build_router(spec, endpoint, None, None)
    pending = [endpoint.build([endpoint.prepare(Row(r["id"], r, i + 1))]) for i, r in enumerate(rows)]
    failed = [0]

    async def worker(client: ServiceClient) -> None:
        while pending:
            request = pending.pop()
            try:
                await client.call(request, endpoint.parse)
            except APIError:
                failed[0] += 1

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            client = ServiceClient(spec, router, session)
            await asyncio.gather(*(worker(client) for _ in range(spec.limits.concurrency)))

    asyncio.run(main())
    return router.deployments[0].pacer, failed[0]


def steady_share(admitted_times: list[float], tokens: int, quota_per_s: float) -> float:
    """Tokens the service admitted per second over the middle 80 % of its admissions, as a share of quota."""
    times = sorted(admitted_times)
    low, high = len(times) // 10, len(times) - 1 - len(times) // 10
    return (high - low) / (times[high] - times[low]) * tokens / len(times) / quota_per_s


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_pacing_by_the_service_token_count(tmp_path: Path, emulator, factor: float) -> None:
    emulator.configure(tpm=TPM, window_s=1.0, latency_ms=20, token_count_factor=factor)
    rows = questions(round(3.0 * TPM / 60 / (factor * 115)))  # ~3 s of the quota (~115 tokens a request)
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 100},
                     limits={"tokens_per_minute": TPM, "concurrency": 16})
    pacer, failed = send_all(spec, rows)
    stats = emulator.stats()
    assert failed == 0
    assert pacer.ratio == pytest.approx(factor, rel=0.03)
    assert stats["by_status"].get("429", 0) <= 0.01 * stats["requests"], stats["by_status"]
    # By our estimate alone 0.8 ran at 0.79 of the quota; 1.25 earned 429s and ran at 0.92.
    assert steady_share(stats["admitted_times"], stats["tokens_charged"], TPM / 60) >= 0.9


def test_a_row_refused_on_every_attempt_does_not_hold_the_others(tmp_path: Path, emulator) -> None:
    emulator.configure(latency_ms=10, fault_retry_after_ms=500)  # its 429s ask for half a second each
    rows = questions(300, marked=7)
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", rows),
                     inputs={"prompt": "text"}, service={"deployment": "gpt-4o-mini"}, params={"max_tokens": 10},
                     limits={"requests_per_minute": 60_000, "concurrency": 8, "max_attempts": 4})
    pacer, failed = send_all(spec, rows)
    assert failed == 1  # the marked row, after its 4 attempts, each waiting its own retry-after
    assert emulator.stats()["faults"]["429"] == 4
    # Only its first refusal, without anything to tell it from the quota, held everyone: once.
    assert pacer.holds <= 1 and pacer.held_s <= 0.5 + 1e-6


def test_the_shared_hold_is_capped_by_max_retry_wait_s(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, "chat", input_path=write_rows(tmp_path / "in.jsonl", questions(1)),
                     inputs={"prompt": "text"}, limits={"max_retry_wait_s": 7})
    router = build_router(load_spec(spec), endpoint_for(load_spec(spec)), None, None)
    pacer = router.deployments[0].pacer
    pacer.on_rate_limited(86_400.0)  # a retry-after of a day
    assert pacer.max_hold_s == 7 and 6.9 < pacer.hold_remaining() <= 7
