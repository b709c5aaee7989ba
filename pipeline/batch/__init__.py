"""Batch mode (`[service] mode = "batch"`): a job's rows sent through the service's Batch API.

lines.py   pure: line and file formats, per-file limits, what an output line means (routes: client/urls.py)
book.py    batches.json and batches/: which files were uploaded, which batches exist, which rows each holds
api.py     the Files and Batch APIs over HTTP (auth, retries, typed errors)
engine.py  BatchJob: submit -> poll -> collect, resubmission, the online fallback
"""

from __future__ import annotations

from pipeline.batch.book import batch_summary, summary_lines
from pipeline.batch.engine import BatchJob, run_batch_job_async

__all__ = ["BatchJob", "batch_summary", "run_batch_job_async", "summary_lines"]
