"""Several deployments (GitHub issue 8): one job spread over three quotas, and one of them failing.

Three emulators, each in its own process with its own quota R (RPM 600, 1 s windows as Azure
evaluates them, 50 ms latency), are listed as three `[[service.deployments]]` of one chat job
whose entries each claim requests_per_minute = R. The job runs in this process.

a. All three healthy. The combined steady throughput (the three emulators' admitted arrival
   times merged, middle 80%) is held against 3R; the whole run (rows / wall time) is info, and
   so is each deployment's share of the rows (the results' `deployment` column).
b. The same, but at a third of the planned run one emulator starts answering every request with
   a 500 or a 503 (`error_rate = 1.0`). The throughput after that moment (the two healthy
   emulators' admitted arrivals, middle 80%) is held against 2R, and the job must still end with
   every row in results exactly once and no failures. The whole run is also held (info) against
   the best possible one: the rows admitted before the failure, then the rest at 2R; a tail of
   attempts still waiting on the failing deployment shows there.
c. As b, but the failing emulator answers every request with a 429 (`burst429_rate = 1.0`: half
   with retry-after-ms 50, half without retry-after), like a deployment whose quota another
   tenant has taken.
d. Unequal token quotas (TPM 240k, 60k, 60k; entries with tokens_per_minute only), 1 s latency
   and 40 requests in flight: the job is bound by its concurrency (40 requests/s), not by the
   quotas (about 51 requests/s). Steady throughput against that bound: the Router must not let
   the small deployments hold workers queued in their pacers while the large one has room.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from bench import clients
from bench.harness import Emulator, Figure, chat_row, log, measure, steady_rate, write_jsonl, write_spec

NAME = "deployments"
DEPLOYMENT = "gpt-4o-mini"
RPM = 600  # R: each emulator's quota (10 requests/s)
COUNT = 3
LATENCY_MS = 50.0
CONCURRENCY = 32
SECONDS, QUICK_SECONDS = 30.0, 10.0  # the healthy run's length at 3R
FAIL_AT = 1 / 3  # cases b and c: share of the planned run after which one emulator fails
MIN_RATIO = 0.90
MAX_429_SHARE = 0.01
# Case d: token quotas, bound by concurrency.
TPMS = (240_000, 60_000, 60_000)
TPM_LATENCY_MS = 1000.0
TPM_CONCURRENCY = 40
TPM_MAX_TOKENS = 100
TPM_SECONDS, TPM_QUICK_SECONDS = 15.0, 8.0
HEALTHY = {"error_rate": 0.0, "burst429_rate": 0.0, "hang_rate": 0.0, "drop_rate": 0.0}


@dataclass(frozen=True)
class Failure:
    case: str
    fault: dict[str, Any]  # the emulator config fields that make region-0 fail


FAILURES = [
    Failure("b. one answers only 500/503", {"error_rate": 1.0}),
    # Half of them carry retry-after-ms: 50, half no retry-after at all (the client then holds 1 s).
    Failure("c. one answers only 429", {"burst429_rate": 1.0}),
]


@dataclass(frozen=True)
class Setup:
    configs: list[dict[str, Any]]  # each emulator's config
    entries: list[dict[str, Any]]  # each [[service.deployments]] entry's limits
    concurrency: int
    max_tokens: int


RPM_SETUP = Setup([{"rpm": RPM, "tpm": None, "latency_ms": LATENCY_MS}] * COUNT,
                  [{"requests_per_minute": RPM}] * COUNT, CONCURRENCY, 10)
TPM_SETUP = Setup([{"rpm": None, "tpm": tpm, "latency_ms": TPM_LATENCY_MS} for tpm in TPMS],
                  [{"tokens_per_minute": tpm} for tpm in TPMS], TPM_CONCURRENCY, TPM_MAX_TOKENS)


@dataclass
class Seen:
    rows: int
    wall_s: float
    stats: list[dict[str, Any]]
    served: Counter[str]
    result_ids: list[str]
    failures: int
    exit_code: int
    started: float  # time.time() at the start of the job
    failed_at: float | None = None  # time.time() when the failing emulator was switched


def _spec(folder: Path, emulators: list[Emulator], rows: Path, setup: Setup) -> Path:
    spec = write_spec(folder, emulators[0].url, "chat", rows, deployment=DEPLOYMENT,
                      params={"max_tokens": setup.max_tokens},
                      limits={"concurrency": setup.concurrency, "max_retry_wait_s": 5},
                      output={"flush_seconds": 1.0}, name="deployments")
    lines = []
    for index, (emulator, entry) in enumerate(zip(emulators, setup.entries, strict=True)):
        lines += ["[[service.deployments]]", f'name = "region-{index}"', f'base_url = "{emulator.url}"',
                  *[f"{key} = {value}" for key, value in entry.items()]]
    with spec.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    return spec


def _read(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists() or not any(folder.glob("part-*.parquet")):
        return []
    return ds.dataset(str(folder), format="parquet").to_table().to_pylist()


def _run_case(emulators: list[Emulator], setup: Setup, count: int, work: Path,
              failure: Failure | None = None, fail_after_s: float = 0.0) -> Seen:
    for emulator, config in zip(emulators, setup.configs, strict=True):
        emulator.configure(window_s=1.0, **config, **HEALTHY)
        emulator.reset()
    folder = Path(tempfile.mkdtemp(dir=work))
    failed_at: list[float] = []

    def fail() -> None:
        failed_at.append(time.time())
        emulators[0].configure(**(failure.fault if failure else {}))

    timer = threading.Timer(fail_after_s, fail) if failure is not None else None
    try:
        spec = _spec(folder, emulators, write_jsonl(folder / "in.jsonl", count, chat_row), setup)
        started = time.time()
        if timer is not None:
            timer.start()
        with measure() as spent:
            result = clients.run_ours(spec)
        results = _read(folder / "out" / "results")
        failures = len(_read(folder / "out" / "failures"))
    finally:
        if timer is not None:
            timer.cancel()
        shutil.rmtree(folder, ignore_errors=True)
    stats = [emulator.stats() for emulator in emulators]
    served = Counter(str(r.get("deployment")) for r in results)
    log(f"  deployments: {len(results)}/{count} rows in {spent.wall_s:.1f} s (exit {result.exit_code}), "
        f"served {dict(sorted(served.items()))}, {failures} failures, "
        f"statuses {[s['by_status'] for s in stats]}")
    return Seen(count, spent.wall_s, stats, served, [str(r["id"]) for r in results], failures, result.exit_code,
                started, failed_at[0] if failed_at else None)


def _shares(seen: Seen) -> str:
    total = max(1, sum(seen.served.values()))
    return ", ".join(f"{name} {n / total:.0%}" for name, n in sorted(seen.served.items()))


def _once_figure(case: str, seen: Seen) -> Figure:
    """Every row in results exactly once, none in failures."""
    distinct = len(set(seen.result_ids))
    duplicates = len(seen.result_ids) - distinct
    ok = distinct == seen.rows and duplicates == 0 and seen.failures == 0
    return Figure(NAME, f"{case}: rows in results, each once", distinct, "rows", seen.rows, "input rows",
                  distinct / seen.rows, "all, 0 duplicates, 0 failures", ok,
                  f"{duplicates} duplicates, {seen.failures} failures, exit {seen.exit_code}")


def _healthy_case(seen: Seen) -> list[Figure]:
    case = "a. 3 x RPM 600"
    quota = COUNT * RPM / 60
    steady = steady_rate([t for s in seen.stats for t in s["admitted_times"]]) or 0.0
    whole = len(seen.result_ids) / seen.wall_s
    throttled = sum(s["by_status"].get("429", 0) for s in seen.stats)
    requests = sum(s["requests"] for s in seen.stats)
    share = throttled / max(1, requests)
    setup = f"{len(seen.result_ids)}/{seen.rows} rows in {seen.wall_s:.1f} s; each entry claims rpm={RPM}"
    return [
        Figure(NAME, f"{case}: throughput, steady (middle 80%)", steady, "req/s", quota, "3 quotas (3R)",
               steady / quota, f">= {MIN_RATIO:.2f}", steady / quota >= MIN_RATIO, setup),
        Figure(NAME, f"{case}: throughput, whole run", whole, "req/s", quota, "3 quotas (3R)", whole / quota,
               "info", None),
        Figure(NAME, f"{case}: share of 429s", share * 100, "%", None, "", None, f"< {MAX_429_SHARE:.0%}",
               share < MAX_429_SHARE, f"{throttled} of {requests} requests"),
        Figure(NAME, f"{case}: rows served by the busiest one", max(seen.served.values(), default=0)
               / max(1, sum(seen.served.values())) * 100, "%", None, "", None, "info", None, _shares(seen)),
        _once_figure(case, seen),
    ]


def _failing_case(failure: Failure, seen: Seen) -> list[Figure]:
    case = f"{failure.case}, from 1/3 on"
    quota = (COUNT - 1) * RPM / 60
    assert seen.failed_at is not None
    fail_s = seen.failed_at - seen.started
    healthy = [t for s in seen.stats[1:] for t in s["admitted_times"] if t >= seen.failed_at]
    steady = steady_rate(healthy) or 0.0
    before = [t for s in seen.stats for t in s["admitted_times"] if t < seen.failed_at]
    # The best any client could do: the rows admitted before the failure, the rest at 2R.
    ideal = fail_s + max(0, seen.rows - len(before)) / quota
    answers = seen.stats[0]["by_status"]
    throttled = sum(s["by_status"].get("429", 0) for s in seen.stats[1:])
    requests = sum(s["requests"] for s in seen.stats[1:])
    setup = (f"{len(seen.result_ids)}/{seen.rows} rows in {seen.wall_s:.1f} s; region-0 fails at {fail_s:.1f} s, "
             f"its answers over the run: {dict(sorted(answers.items()))}; before the failure "
             f"{steady_rate(before) or 0.0:.1f} req/s steady")
    return [
        Figure(NAME, f"{case}: throughput after the failure, steady", steady, "req/s", quota,
               "2 healthy quotas (2R)", steady / quota, f">= {MIN_RATIO:.2f}", steady / quota >= MIN_RATIO, setup),
        Figure(NAME, f"{case}: whole run against the best possible", seen.wall_s, "s", ideal,
               "3R until the failure, then 2R", ideal / seen.wall_s, "info", None,
               "ratio = best possible / wall time; a tail of rows still waiting on the failing deployment "
               "lowers it"),
        Figure(NAME, f"{case}: share of 429s from the healthy two", throttled / max(1, requests) * 100, "%", None,
               "", None, f"< {MAX_429_SHARE:.0%}", throttled / max(1, requests) < MAX_429_SHARE,
               f"{throttled} of {requests} requests"),
        Figure(NAME, f"{case}: rows served by the failing one", seen.served.get("region-0", 0)
               / max(1, sum(seen.served.values())) * 100, "%", None, "", None, "info", None, _shares(seen)),
        _once_figure(case, seen),
    ]


def _token_case(seen: Seen) -> list[Figure]:
    case = "d. TPM 240k + 60k + 60k, 40 in flight, 1 s latency"
    admitted = [t for s in seen.stats for t in s["admitted_times"]]
    per_request = sum(s["tokens_charged"] for s in seen.stats) / max(1, len(admitted))
    quotas = sum(TPMS) / 60 / per_request
    bound = min(TPM_CONCURRENCY / (TPM_LATENCY_MS / 1000), quotas)
    steady = steady_rate(admitted) or 0.0
    throttled = sum(s["by_status"].get("429", 0) for s in seen.stats)
    requests = sum(s["requests"] for s in seen.stats)
    rates = ", ".join(f"region-{i} {steady_rate(s['admitted_times']) or 0.0:.1f} req/s (quota "
                      f"{tpm / 60 / per_request:.1f})" for i, (s, tpm) in enumerate(zip(seen.stats, TPMS, strict=True)))
    setup = (f"{len(seen.result_ids)}/{seen.rows} rows in {seen.wall_s:.1f} s; {per_request:.0f} tokens a request; "
             f"steady per deployment: {rates}; {throttled} x 429 of {requests} requests")
    return [
        Figure(NAME, f"{case}: throughput, steady", steady, "req/s", bound, "concurrency / latency",
               steady / bound, f">= {MIN_RATIO:.2f}", steady / bound >= MIN_RATIO, setup),
        _once_figure(case, seen),
    ]


def run(quick: bool, work: Path) -> list[Figure]:
    seconds = QUICK_SECONDS if quick else SECONDS
    count = round(COUNT * RPM / 60 * seconds)
    emulators = [Emulator() for _ in range(COUNT)]
    try:
        for emulator in emulators:
            emulator.__enter__()
        figures = _healthy_case(_run_case(emulators, RPM_SETUP, count, work))
        for failure in FAILURES:
            figures += _failing_case(failure, _run_case(emulators, RPM_SETUP, count, work, failure,
                                                        seconds * FAIL_AT))
        tpm_rows = round(TPM_CONCURRENCY / (TPM_LATENCY_MS / 1000) * (TPM_QUICK_SECONDS if quick else TPM_SECONDS))
        figures += _token_case(_run_case(emulators, TPM_SETUP, tpm_rows, work))
    finally:
        for emulator in emulators:
            emulator.__exit__()
    return figures
