"""What the operator sees: a live line on a terminal, plain lines every N seconds elsewhere, a summary."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pipeline.stats import RunStats


def status_line(stats: RunStats, state: str, tpm_limit: int | None) -> str:
    done = stats.succeeded + stats.failed
    total = stats.total - stats.skipped if stats.total is not None else None
    elapsed = max(stats.elapsed, 1e-9)
    rate = done / elapsed
    parts = [f"{done}/{total}" if total is not None else f"{done}", f"ok {stats.succeeded}", f"failed {stats.failed}"]
    if stats.skipped:
        parts.append(f"skipped {stats.skipped}")
    parts.append(f"{rate:.1f} rows/s")
    tokens_per_min = (stats.tokens_in + stats.tokens_out) / elapsed * 60
    parts.append(f"{tokens_per_min:,.0f} tok/min" + (f" of {tpm_limit:,}" if tpm_limit else ""))
    parts.append(state)
    if total and rate > 0 and done < total:
        parts.append(f"ETA {_duration((total - done) / rate)}")
    return " | ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressPrinter:
    """Redraws one line on a terminal; prints plain lines off one (cron, CI, pipes)."""

    def __init__(self, stream: TextIO = sys.stderr, tty: bool | None = None, tpm_limit: int | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.tpm_limit = tpm_limit

    def __call__(self, stats: RunStats, state: str) -> None:
        line = status_line(stats, state, self.tpm_limit)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _failed_earlier(summary: dict[str, Any]) -> str:
    earlier = summary.get("rows_failed_earlier")
    return f"; {earlier} of them failed earlier" if earlier else ""


def _transient(summary: dict[str, Any]) -> str:
    transient = summary.get("rows_failed_transient")
    return (f" ({transient} of them on transient errors: timeouts, 5xx, 429s; a plain rerun sends them again)"
            if transient else "")


def summary_text(summary: dict[str, Any], output: str) -> str:
    latency = summary.get("latency", {})
    retries = ", ".join(f"{k} {v}" for k, v in sorted(summary.get("retries", {}).items())) or "none"
    lines = [
        f"rows: {summary['rows_succeeded']} succeeded, {summary['rows_failed']} failed, "
        f"{summary['rows_skipped']} skipped (already done{_failed_earlier(summary)})",
        f"time: {summary['wall_time_s']:.1f} s, {summary['rows_per_s']:.1f} rows/s, {summary['requests']} requests",
        f"latency: p50 {latency.get('p50_ms')} ms, p95 {latency.get('p95_ms')} ms, p99 {latency.get('p99_ms')} ms",
        f"retries: {retries}; 429s: {summary.get('throttled_429', 0)}",
        f"tokens: {summary['tokens_in']} in, {summary['tokens_out']} out",
    ]
    cost = summary.get("cost")
    if cost:
        lines.append(f"cost: {'~' if cost['estimated'] else ''}${cost['amount']:.4f} ({cost['prices']})")
    if summary.get("failures_by_code"):
        lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in summary["failures_by_code"].items())
                     + _transient(summary))
    lines.append(f"output: {output}")
    return "\n".join(lines)
