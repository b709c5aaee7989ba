"""Command line: thin click wrappers over importable functions; outcomes become exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from pipeline.checkpoint import LockHeld
from pipeline.errors import InputError, JobAborted, PipelineError, SpecError
from pipeline.logsetup import configure_logging
from pipeline.redact import redact
from pipeline.runner import (
    EXIT_ABORTED,
    EXIT_BAD_INPUT,
    EXIT_LOCKED,
    EXIT_OUTPUT,
    RunOptions,
    run_job,
)
from pipeline.sinks.parquet import OutputWriteError
from pipeline.spec import load_spec

EXIT_INTERNAL = 70


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)


def guarded(action: Callable[[], Any]) -> Any:
    """Run an action; the tool's own errors become one line on stderr and their exit code."""
    try:
        return action()
    except (SpecError, InputError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except LockHeld as exc:
        fail(str(exc), EXIT_LOCKED)
    except JobAborted as exc:
        fail(str(exc), EXIT_ABORTED)
    except OutputWriteError as exc:
        fail(str(exc), EXIT_OUTPUT)
    except PipelineError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        fail("interrupted", 130)


@click.group()
@click.version_option(package_name="aoai-pipeline")
@click.option("--log-level", default=None, help="debug, info, warning (default), error. Env: PIPELINE_LOG_LEVEL.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def main(log_level: str | None, log_format: str) -> None:
    """Async batch pipeline for Azure OpenAI and OpenAI-compatible services."""
    configure_logging(log_level, log_format)


@main.command()
@click.argument("job", type=click.Path(path_type=Path))
def validate(job: Path) -> None:
    """Check a job spec and its input without calling the service."""
    from pipeline.preflight import preflight

    def check() -> None:
        spec = load_spec(job)
        from pipeline.client.urls import request_url

        plan = preflight(spec, read_done=False)
        url = request_url(spec.service, spec.service.base_url or "http://emulator", plan.endpoint.op)
        click.echo(f"ok: {job}: {spec.endpoint} job {spec.name!r}, {plan.total} rows in {spec.input.path}, "
                   f"requests go to {url}")

    guarded(check)


@main.command()
@click.argument("job", type=click.Path(path_type=Path))
@click.option("--retry-failed", is_flag=True, help="Send rows that failed in earlier runs again.")
@click.option("--force", is_flag=True, help="Run even though the spec changed since the output was written.")
@click.option("--limit", type=click.IntRange(min=1), help="Process at most N new rows (try a job on a sample).")
@click.option("--max-duration", type=float, help="Stop cleanly after this many seconds (resumable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display and no summary.")
@click.option("--progress-every", type=float, default=30.0, show_default=True,
              help="Seconds between status lines when not on a terminal.")
@click.option("--summary-json", type=click.Path(path_type=Path), help="Write the run summary as JSON here.")
def run(job: Path, retry_failed: bool, force: bool, limit: int | None, max_duration: float | None,
        quiet: bool, progress_every: float, summary_json: Path | None) -> None:
    """Run a job: stream the input through the service into results/ and failures/."""
    from pipeline.progress import ProgressPrinter, summary_text

    spec = guarded(lambda: load_spec(job))
    printer = None if quiet else ProgressPrinter(tpm_limit=spec.limits.tokens_per_minute)
    options = RunOptions(retry_failed=retry_failed, force=force, limit=limit, max_duration_s=max_duration,
                         handle_signals=True, on_progress=printer,
                         progress_interval_s=1.0 if printer and printer.tty else progress_every)
    result = guarded(lambda: run_job(spec, options))
    if printer:
        printer.close()
        click.echo(summary_text(result.summary, str(result.output)), err=True)
    if summary_json:
        summary_json.write_text(json.dumps({"exit_code": result.exit_code, **result.summary}, indent=2))
    if result.message:
        click.echo(("error: " if result.exit_code == EXIT_ABORTED else "") + redact(result.message), err=True)
    sys.exit(result.exit_code)


def _register_emulator() -> None:
    from pipeline.emulator.command import emulator_command

    main.add_command(emulator_command, name="emulator")


_register_emulator()
