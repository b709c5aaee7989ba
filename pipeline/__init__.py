"""Async batch pipeline for Azure OpenAI and OpenAI-compatible services.

    from pipeline import load_spec, run_job
    result = run_job(load_spec("jobs/embed-corpus.toml"))
    result.exit_code, result.summary["rows_succeeded"]
    result = await run_job_async(spec)  # inside a running event loop (run_job works there too)
"""

from pipeline.errors import (
    APIError,
    InputError,
    JobAborted,
    PipelineError,
    SpecError,
)
from pipeline.runner import RunOptions, RunResult, run_job, run_job_async
from pipeline.spec import JobSpec, load_spec
from pipeline.version import __version__

__all__ = [
    "APIError",
    "InputError",
    "JobAborted",
    "JobSpec",
    "PipelineError",
    "RunOptions",
    "RunResult",
    "SpecError",
    "__version__",
    "load_spec",
    "run_job",
    "run_job_async",
]
