"""Command line: thin click wrappers over importable functions; outcomes become exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from pipeline.checkpoint import LockHeld
from pipeline.core.exitcodes import ExitCode
from pipeline.core.options import RunOptions
from pipeline.crashpoints import CrashPlan
from pipeline.errors import InputError, JobAborted, PipelineError, SpecError
from pipeline.logsetup import configure_logging
from pipeline.redact import redact
from pipeline.runner import run_job
from pipeline.sinks.parquet import OutputWriteError
from pipeline.spec import load_spec

FAILED_RUN = (ExitCode.ABORTED, ExitCode.OUTPUT, ExitCode.BAD_INPUT, ExitCode.INTERNAL)  # not budgets, signals


@dataclass(frozen=True)
class Settings:
    """What the options before the command set for the command (click's context object)."""

    log_bodies: bool = False


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)


def _crash_plan() -> CrashPlan | None:
    """The test hook's plan from PIPELINE_CRASH_AT, read when a run starts; a bad one is a one-line error."""
    try:
        return CrashPlan.from_environment()
    except ValueError as exc:
        fail(str(exc), ExitCode.BAD_INPUT)


def guarded(action: Callable[[], Any]) -> Any:
    """Run an action; the tool's own errors become one line on stderr and their exit code."""
    try:
        return action()
    except (SpecError, InputError) as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    except LockHeld as exc:
        fail(str(exc), ExitCode.LOCKED)
    except JobAborted as exc:
        fail(str(exc), ExitCode.ABORTED)
    except OutputWriteError as exc:
        fail(str(exc), ExitCode.OUTPUT)
    except PipelineError as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.SIGINT)
    except Exception as exc:  # a bug: one line for the user, the traceback at debug level
        import logging

        logging.getLogger("pipeline").debug("internal error", exc_info=True)
        fail(f"internal error: {type(exc).__name__}: {exc} (committed results are safe; a rerun resumes; "
             "--log-level debug shows the traceback)", ExitCode.INTERNAL)


@click.group()
@click.version_option(package_name="aoai-pipeline")
@click.option("--log-level", default=None, help="debug, info, warning (default), error. Env: PIPELINE_LOG_LEVEL.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-bodies", is_flag=True, help="At debug level, also log request and response bodies.")
@click.pass_context
def main(ctx: click.Context, log_level: str | None, log_format: str, log_bodies: bool) -> None:
    """Async batch pipeline for Azure OpenAI and OpenAI-compatible services."""
    configure_logging(log_level, log_format)
    ctx.obj = Settings(log_bodies=log_bodies)


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
        click.echo(f"ok: {job}: {spec.endpoint} job {spec.name!r}, {plan.total} rows in {spec.input.location}, "
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
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: spread the job's shards over a Ray cluster, one quota shared by all workers.")
@click.option("--address", help="The Ray cluster (--executor ray). Default: RAY_ADDRESS, else one started here.")
@click.option("--workers", type=click.IntRange(min=1), help="Shards run side by side (--executor ray; default: "
              "the cluster's CPUs).")
@click.option("--log-level", default=None, help="Same as the option before the command.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.pass_context
def run(ctx: click.Context, job: Path, retry_failed: bool, force: bool, limit: int | None, max_duration: float | None,
        quiet: bool, progress_every: float, summary_json: Path | None, executor: str, address: str | None,
        workers: int | None, log_level: str | None, log_format: str | None) -> None:
    """Run a job: stream the input through the service into results/ and failures/."""
    from pipeline.progress import ProgressPrinter, summary_text

    if log_level or log_format:
        configure_logging(log_level, log_format or "text")
    if executor != "ray" and (address or workers):
        fail("--address and --workers are options of --executor ray; add it, or leave them out", ExitCode.BAD_INPUT)
    spec = guarded(lambda: load_spec(job))
    printer = None if quiet else ProgressPrinter(tpm_limit=spec.limits.tokens_per_minute)
    settings = ctx.find_object(Settings) or Settings()
    options = RunOptions(retry_failed=retry_failed, force=force, limit=limit, max_duration_s=max_duration,
                         handle_signals=True, on_progress=printer,
                         crash_plan=_crash_plan(), log_bodies=settings.log_bodies,
                         executor="ray" if executor == "ray" else "local", ray_address=address, workers=workers,
                         progress_interval_s=1.0 if printer and printer.tty else progress_every)
    result = guarded(lambda: run_job(spec, options))
    if printer:
        printer.close()
        click.echo(summary_text(result.summary, str(result.output)), err=True)
    if summary_json:
        summary_json.write_text(json.dumps({"exit_code": result.exit_code, **result.summary}, indent=2))
    if result.message:
        failed = result.exit_code in FAILED_RUN
        click.echo(("error: " if failed else "") + redact(result.message), err=True)
    sys.exit(result.exit_code)


def _output_of(target: str) -> tuple[Any, Any]:
    """A job spec path, an output folder or a cloud output URI -> (spec or None, its checkpoint)."""
    from pipeline.checkpoint import OutputFolder, open_output
    from pipeline.storage import is_uri, locate

    if is_uri(target):
        return None, OutputFolder(locate(target))
    if Path(target).is_dir():
        return None, OutputFolder(Path(target))
    spec = load_spec(target)
    return spec, open_output(spec.output)


def _local_file(value: str) -> Path:
    """Exports are written to a local file; a URI would otherwise become a strange local folder."""
    from pipeline.storage import is_uri

    if is_uri(value):
        raise InputError(f"{value}: --to writes a local file; export locally, then copy it to storage")
    return Path(value)


@main.command()
@click.argument("target", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(target: str, as_json: bool) -> None:
    """Done / failed / remaining of a job (spec or output folder), without calling the service."""
    from pipeline.report import job_status, status_text
    from pipeline.sources import open_source

    def show() -> None:
        spec, out = _output_of(target)
        if not out.path.exists():
            raise PipelineError(f"{out.path}: no output yet; run the job first")
        total = open_source(spec.input, spec.output).count() if spec else None
        info = job_status(out, total)
        click.echo(json.dumps(info, indent=2) if as_json else status_text(info))

    guarded(show)


@main.command()
@click.argument("job", type=click.Path(path_type=Path))
@click.option("--to", "destination", required=True, type=click.Path(), help="Output file: .parquet, .jsonl or .csv.")
@click.option("--join", "join", multiple=True, help="Input column to add (repeatable); [output] keep is added too.")
def export(job: Path, destination: str, join: tuple[str, ...]) -> None:
    """Write all results in input order to one file, joined with input columns."""
    from pipeline.report import export_results

    def go() -> None:
        spec = load_spec(job)
        rows = export_results(spec, _local_file(destination), list(dict.fromkeys([*join])))
        click.echo(f"wrote {rows} rows to {destination}")

    guarded(go)


@main.command()
@click.argument("target", type=click.Path())
@click.option("--to", "destination", type=click.Path(), help="Export to .parquet, .jsonl or .csv.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to list.")
def failures(target: str, destination: str | None, limit: int) -> None:
    """List (or export) the rows that failed and never succeeded, newest record per id."""
    from pipeline.report import latest_failures, write_table

    def go() -> None:
        _, out = _output_of(target)
        table = latest_failures(out)
        if table is None or table.num_rows == 0:
            click.echo("no failures")
            return
        if destination:
            write_table(table, _local_file(destination))
            click.echo(f"wrote {table.num_rows} failures to {destination}")
            return
        for record in table.slice(0, limit).to_pylist():
            where = f"line {record['line']}" if record.get("line") else ""
            click.echo(f"{record['id']}\t{where}\t{record['error_class']}\t{record.get('status') or ''}\t"
                       f"{record.get('error_code') or ''}\t{record['message']}\t{record.get('request_id') or ''}")
        if table.num_rows > limit:
            click.echo(f"... and {table.num_rows - limit} more (use --limit or --to FILE)")

    guarded(go)


def _register_emulator() -> None:
    from pipeline.emulator.command import emulator_command

    main.add_command(emulator_command, name="emulator")


_register_emulator()
