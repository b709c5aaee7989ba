"""A run's end: its exit code and message, its summary, and its entry in job.json's run history."""

from __future__ import annotations

import time

from pipeline.checkpoint import now_iso
from pipeline.core.exitcodes import ExitCode
from pipeline.core.job import Job
from pipeline.core.options import RunResult
from pipeline.redact import redact
from pipeline.version import __version__

RUNS_KEPT = 50  # job.json keeps the history of this many runs


def finish(job: Job, started: str) -> RunResult:
    """Summarise the run, add it to job.json's history, and say how it ended."""
    job.stats.ended = time.monotonic()
    summary = job.stats.summary()
    if job.prices is not None:
        summary["cost"] = {"amount": round(job.cost(), 6), "currency": "USD", "estimated": job.prices.estimated,
                           "prices": job.prices.source}
    code, message = outcome(job)
    history = (job.out.read_job() or {}).get("runs", [])[-(RUNS_KEPT - 1):]
    history.append({"started": started, "ended": now_iso(), "exit_code": code, "summary": summary,
                    "message": message})
    job.out.write_job({
        "name": job.spec.name, "tool_version": __version__, "endpoint": job.spec.endpoint,
        "spec_file": str(job.spec.source_file), "fingerprint": job.spec.fingerprint(),
        "fingerprint_fields": job.spec.fingerprint_fields(), "runs": history, "last_summary": summary,
    })
    return RunResult(code, summary, job.out.path, redact(message) if message else None, job.stats)


def outcome(job: Job) -> tuple[ExitCode, str | None]:
    """The exit code and message: a stop's own, else whether every row of the input is now done.

    The end-of-run check comes first: rows counted as answered that no part holds mean a write was
    lost, which must never pass as success (a rerun redoes them)."""
    results, failures = job.uncommitted()
    if results or failures:
        lost = f"{results} answered row(s) and {failures} failure row(s) this run counted were not committed"
        if job.stop_code is not None and job.stop_code in (ExitCode.OUTPUT, ExitCode.INTERNAL):
            return job.stop_code, f"{job.stop_message}; {lost}"
        return ExitCode.INTERNAL, f"internal error: {lost}; run again to redo them (please report this)"
    if job.stop_code is not None:
        return job.stop_code, job.stop_message
    if job.stats.failed:
        return ExitCode.ROWS_FAILED, None
    if job.stats.failed_earlier:
        return ExitCode.ROWS_FAILED, (f"{job.stats.failed_earlier} row(s) failed in earlier runs and were not "
                                      "sent again; `pipeline failures` lists them, `pipeline run --retry-failed` "
                                      "retries them")
    return ExitCode.OK, None
