"""Invariants checked over generated cases (hypothesis):
(a) the pacer's arrivals, replayed into the service's own quota rule (1 s windows), are never refused,
    whatever the mix of request sizes, workers, 429s and recoveries; time is virtual, so a case that
    spans minutes runs in milliseconds;
(b) any interleaving of completions, flushes and crashes (a .tmp left behind, a buffer lost) followed by
    restarts that skip what is done ends with every id in exactly one closed part;
(c) a spec one or a few keys away from valid, for every endpoint, raises SpecError and nothing else,
    through parsing and the endpoint's own parameter checks (tests/test_spec.py fuzzes the top level).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.checkpoint import OutputFolder
from pipeline.client.limiter import Pacer
from pipeline.emulator.quotas import Limits, SlidingWindowQuota
from pipeline.sinks.parquet import PartWriter

from ..virtual_time import VirtualTimeLoop
from .conftest import assert_exactly_once

# ---- (a) the pacer against the service's window rule, in virtual time


def run_virtual(coroutine: Any) -> Any:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@dataclass
class Traffic:
    rpm: int | None
    tpm: int | None
    workers: int
    sizes: list[int]  # token estimate of each request, in order
    answers: list[str]  # per request: "ok", "429" (retry-after 0.05..2 s) or "429bare"
    arrivals: list[tuple[float, int]] = field(default_factory=list)


async def drive(traffic: Traffic) -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(traffic.rpm, traffic.tpm, clock=loop.time)
    queue = list(zip(traffic.sizes, traffic.answers, strict=True))

    async def worker() -> None:
        while queue:
            tokens, answer = queue.pop(0)
            generation = await pacer.acquire(tokens)
            traffic.arrivals.append((loop.time(), tokens))
            await asyncio.sleep(0.02)  # the answer's latency
            if answer == "ok":
                pacer.on_success(tokens, None, None)
            else:
                pacer.on_rate_limited(0.05 + (tokens % 20) / 10 if answer == "429" else None, generation)

    await asyncio.gather(*(worker() for _ in range(traffic.workers)))


def refused(traffic: Traffic) -> list[tuple[float, int, str | None]]:
    """Arrivals the service's sliding 1 s windows would answer with 429."""
    quota = SlidingWindowQuota(Limits(traffic.rpm, traffic.tpm, 1.0))
    out = []
    for at, tokens in sorted(traffic.arrivals):
        decision = quota.admit(at, tokens)
        if not decision.admitted:
            out.append((round(at, 4), tokens, decision.reason))
    return out


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    rpm = draw(st.one_of(st.none(), st.integers(1, 6000)))
    tpm = draw(st.one_of(st.none(), st.integers(1000, 300_000))) if rpm else draw(st.integers(1000, 300_000))
    window_tokens = int(tpm / 60) if tpm else 4000  # one second of token quota
    n = draw(st.integers(5, 60))
    size = st.one_of(st.integers(1, max(1, window_tokens)), st.integers(1, 3 * window_tokens))  # some too big
    sizes = draw(st.lists(size, min_size=n, max_size=n))
    answers = draw(st.lists(st.sampled_from(["ok"] * 8 + ["429", "429bare"]), min_size=n, max_size=n))
    return Traffic(rpm, tpm, draw(st.integers(1, 8)), sizes, answers)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic())
def test_pacer_never_exceeds_the_quota_over_any_1s_window(case: Traffic) -> None:
    run_virtual(drive(case))
    assert len(case.arrivals) == len(case.sizes)
    assert refused(case) == []


@pytest.mark.parametrize("rpm", [3, 60])
def test_at_a_whisper_quota_requests_leave_one_window_apart(rpm: int) -> None:
    """Azure's default whisper quota is 3 RPM: one request per 20 s window. Four workers, eight
    requests, one answered 429 (jitter): no 429 by the service's rule, and every gap close to one
    window, so the run takes about what the quota allows and no more."""
    case = Traffic(rpm, None, 4, [1] * 8, ["ok"] * 3 + ["429"] + ["ok"] * 4)
    run_virtual(drive(case))
    assert refused(case) == []
    times = sorted(at for at, _ in case.arrivals)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    window = 60 / rpm
    assert min(gaps) >= window * 0.999
    assert max(gaps) <= window * 1.1 + 2.1  # at most one retry-after hold (<= 2.05 s) on top


def test_virtual_time_moves_only_by_timers() -> None:
    async def nap() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    assert run_virtual(nap()) == pytest.approx(3600)


# ---- (b) crash points at the sink and checkpoint level

SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("value", pa.int64())])
IDS = [f"id-{i:03d}" for i in range(40)]

Step = tuple[str, int]  # ("add", k) complete k rows | ("flush", 0) | ("crash", how) | ("restart", 0)


class Run:
    """One process's view: a PartWriter and the rows left to do, as the runner would skip them."""

    def __init__(self, out: OutputFolder) -> None:
        out.remove_temp_files()
        done = out.ids_in(out.results)
        self.todo = [i for i in IDS if i not in done]
        self.writer = PartWriter(out.results, SCHEMA, flush_rows=10**6, flush_seconds=10**6)

    def add(self, k: int) -> None:
        for row_id in self.todo[:k]:
            self.writer.add({"id": row_id, "value": len(row_id)})
        del self.todo[:k]

    def crash(self, how: int) -> None:
        """0: the buffer is lost; 1: a part's .tmp was being written; 2: a whole .tmp, not renamed."""
        taken = self.writer.take()
        if taken is None or how == 0:
            return
        number, batch = taken
        temp = self.writer.folder / f"part-{number:06d}.parquet.tmp"
        self.writer.write(number, batch)
        (self.writer.folder / f"part-{number:06d}.parquet").rename(temp)
        if how == 1:
            temp.write_bytes(temp.read_bytes()[: temp.stat().st_size // 2])


steps = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 9)),
    st.tuples(st.just("flush"), st.just(0)),
    st.tuples(st.just("crash"), st.integers(0, 2)),
), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_any_interleaving_of_completions_and_crashes_is_exactly_once(tmp_path: Path, plan: list[Step]) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis calls this test many times with one tmp_path
    out = OutputFolder(root)
    out.prepare()
    run = Run(out)
    for action, arg in plan:
        if action == "add":
            run.add(arg)
        elif action == "flush":
            run.writer.flush()
        else:
            run.crash(arg)
            run = Run(out)  # restart: temp files gone, done ids skipped
    final = Run(out)
    final.add(len(IDS))
    final.writer.flush()
    assert_exactly_once(root, IDS)


# ---- (c) a spec one key away from valid: parsing and endpoint set-up raise SpecError and nothing else

VALID: dict[str, dict[str, Any]] = {
    "embeddings": {"input": {"text": "text"}, "service": {"deployment": "e"}},
    "chat": {"input": {"prompt": "text"}, "service": {"deployment": "c"}},
    "completions": {"input": {"prompt": "text"}, "service": {"deployment": "c"}},
    "images": {"input": {"prompt": "text"}, "service": {"deployment": "d"}},
    "speech": {"input": {"text": "text"}, "service": {"deployment": "s"}},
    "transcription": {"input": {}, "service": {"deployment": "w"}},
    "translation": {"input": {}, "service": {"deployment": "w"}},
}
KEYS = {
    "input": ["id", "text", "prompt", "messages", "system", "template", "image", "file", "glob"],
    "output": ["path", "flush_rows", "flush_seconds", "keep", "sidecars"],
    "service": ["provider", "base_url", "deployment", "api_version", "api_style", "auth", "mode", "fallback"],
    "limits": ["concurrency", "requests_per_minute", "tokens_per_minute", "max_attempts", "timeout_s",
               "batch_size", "batch_tokens", "max_retry_wait_s", "max_rows", "max_cost"],
    "params": ["max_tokens", "n", "stream", "temperature", "dimensions", "response_format", "size", "voice",
               "timestamp_granularities", "speed", "quality", "language", "stream_options", "format"],
    "pricing": ["input_per_1m", "per_image"],
}
values = st.recursive(
    st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12)  # TOML has no null
    | st.sampled_from(["json", "text", "srt", "vtt", "verbose_json", "word", "segment", "b64_json", "url", "wav",
                       "1024x1024", "azure", "openai", "batch", "v1", "{text}", "{", "**/*.wav"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=2),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_spec_a_few_keys_off_raises_spec_error_only(tmp_path: Path, endpoint: str, data: st.DataObject) -> None:
    from pipeline.endpoints import endpoint_for
    from pipeline.errors import SpecError
    from pipeline.spec import parse_spec

    raw: dict[str, Any] = {"name": "fuzz", "endpoint": endpoint, "params": {}, "limits": {},
                           "input": {"path": str(tmp_path), **VALID[endpoint]["input"]},
                           "output": {"path": str(tmp_path / "out")},
                           "service": {"provider": "emulator", **VALID[endpoint]["service"]}, "pricing": {}}
    for _ in range(data.draw(st.integers(1, 3))):
        section = data.draw(st.sampled_from(sorted(KEYS)))
        raw[section][data.draw(st.sampled_from(KEYS[section]))] = data.draw(values)
    with contextlib.suppress(SpecError):
        endpoint_for(parse_spec(raw, tmp_path / "fuzz.toml", env={}))
