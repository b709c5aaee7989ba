"""Reading a job's checkpoint without calling the service: status, export, failures."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.batch.book import batch_summary, summary_lines
from pipeline.checkpoint import OutputFolder, open_output
from pipeline.checkpoint.chunks import ChunkStore
from pipeline.errors import InputError, PipelineError, is_transient_failure
from pipeline.sinks.parquet import read_dataset
from pipeline.sources import open_source
from pipeline.spec import JobSpec
from pipeline.storage import LocalPath


def latest_failures(out: OutputFolder) -> pa.Table | None:
    """Failures of ids that never succeeded, the latest record per id."""
    failures = read_dataset(out.failures)
    if failures is None:
        return None
    done = read_dataset(out.results, ["id"])
    if done is not None:
        failures = failures.filter(pc.invert(pc.is_in(failures["id"], value_set=done["id"])))
    latest: dict[str, tuple[str, int]] = {}  # by failed_at, then by part (checkpoint/ids.py: why)
    for index, (row_id, when) in enumerate(zip(failures["id"].to_pylist(), failures["failed_at"].to_pylist(),
                                               strict=True)):
        if row_id not in latest or (when or "") >= latest[row_id][0]:
            latest[row_id] = (when or "", index)
    return failures.take(pa.array(sorted(index for _, index in latest.values()), type=pa.int64()))


def _transient_count(failures: pa.Table) -> int:
    columns = [failures[name].to_pylist() if name in failures.column_names else [None] * failures.num_rows
               for name in ("stage", "error_class", "status")]
    return sum(is_transient_failure(*values) for values in zip(*columns, strict=True))


def job_status(out: OutputFolder, total: int | None) -> dict[str, Any]:
    ids = read_dataset(out.results, ["id"])
    done = len(pc.unique(ids["id"])) if ids is not None else 0
    failures = latest_failures(out)
    failed = failures.num_rows if failures is not None else 0
    transient = _transient_count(failures) if failures is not None else 0
    groups: dict[str, dict[str, Any]] = {}
    if failures is not None:
        codes = Counter(failures["error_code"].to_pylist())
        for code, count in codes.most_common():
            sample = failures.filter(pc.equal(failures["error_code"], code))["message"][0].as_py()
            groups[str(code)] = {"count": count, "sample": sample}
    job = out.read_job() or {}
    runs = job.get("runs", [])
    local = out.path.local_path()  # batch mode keeps its state on a local disk only
    return {
        "output": str(out.path), "name": job.get("name"), "total": total, "done": done, "failed": failed,
        "failed_transient": transient,  # of the failed: sent again by a plain rerun
        "remaining": None if total is None else max(0, total - done - failed),
        "failures_by_code": groups, "runs": len(runs),
        "last_run": {k: runs[-1].get(k) for k in ("started", "ended", "exit_code", "message")} if runs else None,
        "running": out.lock_file.exists(),
        "recordings_in_progress": _recordings_in_progress(out),
        "batches": batch_summary(local) if local is not None else [],
    }


def _recordings_in_progress(out: OutputFolder) -> dict[str, int]:
    """Long recordings with answered chunks saved and no row yet: how many recordings, how many chunks."""
    saved = ChunkStore(out.path).in_progress()
    return {"recordings": len(saved), "chunks": sum(saved.values())}


def status_text(status: dict[str, Any]) -> str:
    lines = [f"job {status['name'] or '?'} in {status['output']}",
             f"done {status['done']}, failed {status['failed']}, remaining {status['remaining']}"
             + (f" of {status['total']}" if status["total"] is not None else "")]
    if status.get("failed_transient"):
        lines.append(f"  {status['failed_transient']} of the failed rows failed on transient errors (timeouts, 5xx, "
                     "429s): a plain rerun sends them again")
    for code, group in status["failures_by_code"].items():
        lines.append(f"  {code}: {group['count']} (e.g. {group['sample']})")
    last = status["last_run"]
    if last:
        lines.append(f"last run: started {last['started']}, ended {last['ended']}, exit code {last['exit_code']}"
                     + (f" ({last['message']})" if last.get("message") else ""))
    progress = status.get("recordings_in_progress") or {}
    if progress.get("recordings"):
        lines.append(f"long recordings in progress: {progress['recordings']}, {progress['chunks']} chunks answered "
                     "and saved (the next run sends only the rest)")
    if status.get("batches"):
        lines += ["batches:", *summary_lines(status["batches"])]
    if status["running"]:
        lines.append("a run holds the lock now (or died without releasing it)")
    return "\n".join(lines)


def input_order(spec: JobSpec, keep: list[str]) -> pa.Table:
    """The input's ids in order (and the columns to join), read as a stream."""
    ids: list[str] = []
    kept: dict[str, list[Any]] = {name: [] for name in keep}
    for row in open_source(spec.input, spec.output).rows():
        ids.append(row.id)
        for name in keep:
            value = row.fields.get(name)
            kept[name].append(value if value is None or isinstance(value, str) else json.dumps(value))
    return pa.table({"id": ids, "_position": list(range(len(ids))), **kept})


def export_results(spec: JobSpec, destination: Path, join: list[str]) -> int:
    """One file of results in input order, with input columns joined. Returns the row count."""
    out = open_output(spec.output)
    results = read_dataset(out.results)
    if results is None:
        raise PipelineError(f"{out.results}: no results yet; run the job first")
    bad = [c for c in join if c in results.column_names and c != "id"]
    order = input_order(spec, [c for c in join if c not in bad])
    # Arrow cannot join tables with list columns: join the ids, then take result rows in that order.
    ids = results.select(["id"]).append_column("_row", pa.array(range(results.num_rows), pa.int64()))
    ordered = ids.join(order, "id", join_type="left outer").sort_by("_position")
    table = results.take(ordered["_row"])
    for name in ordered.column_names:
        if name not in ("id", "_row", "_position") and name not in table.column_names:
            table = table.append_column(name, ordered[name])
    write_table(table, destination)
    return table.num_rows


def write_table(table: pa.Table, destination: Path) -> None:
    """An export, committed whole like a part: a crash or a full disk never leaves half a file."""
    write = _EXPORTERS.get(destination.suffix.lower())
    if write is None:
        raise InputError(f"{destination}: export to .parquet, .jsonl or .csv")
    LocalPath(destination).commit(partial(write, table))


def _write_parquet(table: pa.Table, sink: Any) -> None:
    pq.write_table(table, sink)


def _write_jsonl(table: pa.Table, sink: Any) -> None:
    for batch in table.to_batches(max_chunksize=4096):
        for record in batch.to_pylist():
            sink.write((json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def _write_csv(table: pa.Table, sink: Any) -> None:
    pacsv.write_csv(_flatten_nested(table), sink)


_EXPORTERS: dict[str, Callable[[pa.Table, Any], None]] = {
    ".parquet": _write_parquet, ".jsonl": _write_jsonl, ".csv": _write_csv,
}


def _flatten_nested(table: pa.Table) -> pa.Table:
    """CSV has no lists or structs: write them as JSON text."""
    for index, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v) for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(text, pa.string()))
    return table
