"""Everything checked before the first request: input readable, columns present, ids unique,
what is already done, and whether the output folder was made by the same spec."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.checkpoint import IdSet, OutputFolder, id_hash, open_output
from pipeline.endpoints import endpoint_for
from pipeline.endpoints.base import Endpoint, RowError
from pipeline.errors import InputError, SpecError
from pipeline.sources import Source, mapped_columns, open_source
from pipeline.spec import JobSpec

SAMPLE_ROWS = 5


class SpecChanged(SpecError):
    """The output folder holds results of a different spec."""


@dataclass
class Preflight:
    spec: JobSpec
    endpoint: Endpoint
    source: Source
    total: int
    out: OutputFolder
    done: IdSet
    failed_before: IdSet = dataclasses.field(default_factory=IdSet)  # in failures/ and not in results/
    part_tag: str = ""  # names this run's parts apart from other writers' (a shard on a cluster: cluster/)

    def check_fingerprint(self, force: bool) -> None:
        job = self.out.read_job()
        if not job or force or job.get("fingerprint") == self.spec.fingerprint():
            return
        changes = describe_changes(job.get("fingerprint_fields") or {}, self.spec.fingerprint_fields())
        raise SpecChanged(f"{self.spec.source_file}: the spec changed since {self.out.path} was written "
                          f"({changes}); use a new [output] path, or --force to keep the old results")


def describe_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = describe_changes(a, b, f"{prefix}{key}.")
            if inner:
                changes.append(inner)
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return "; ".join(changes)


def check_input(spec: JobSpec, endpoint: Endpoint, source: Source) -> int:
    """Columns present and the first rows build requests. Returns how many sample rows were checked."""
    columns = source.columns()
    if columns is None:
        raise InputError(f"{source.path}: the input holds no readable rows")
    if not spec.input.is_folder():
        needed = [spec.input.id, *mapped_columns(spec.input, spec.output)]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise InputError(f"{source.path}: column(s) {', '.join(repr(m) for m in missing)} not found in the "
                             f"input (it has {', '.join(columns)}); fix [input] or [output] keep")
    checked = 0
    for row in _first(source.rows(), SAMPLE_ROWS):
        if row.error is None:
            try:
                endpoint.build([endpoint.prepare(row)])
            except RowError:
                continue  # a bad row is a row failure, not a spec error
            checked += 1
    return checked


def _first(rows: Iterator[Any], n: int) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if index >= n:
            return
        yield row


def scan_ids(source: Source) -> int:
    """Count rows and refuse repeated ids (naming them with their lines) before any request."""
    hashes = np.fromiter((id_hash(row_id) for row_id, _ in source.ids()), dtype=np.uint64)
    if not len(hashes):
        raise InputError(f"{source.path}: the input is empty; nothing to do")
    unique, counts = np.unique(hashes, return_counts=True)
    if len(unique) == len(hashes):
        return len(hashes)
    repeated = set(unique[counts > 1].tolist())
    lines: dict[str, list[int]] = {}
    for row_id, line in source.ids():
        if id_hash(row_id) in repeated:
            lines.setdefault(row_id, []).append(line)
    shown = "; ".join(f"{i!r} at lines {', '.join(map(str, ls))}" for i, ls in list(lines.items())[:3])
    more = f" and {len(lines) - 3} more" if len(lines) > 3 else ""
    raise InputError(f"{source.path}: {len(lines)} id(s) repeated: {shown}{more}. Ids must be unique; "
                     f"fix the input or choose another [input] id column")


def preflight(spec: JobSpec, retry_failed: bool = False, read_done: bool = True) -> Preflight:
    endpoint = endpoint_for(spec)
    source = open_source(spec.input, spec.output)
    check_input(spec, endpoint, source)
    total = scan_ids(source)
    out = open_output(spec.output)
    done = failed_before = IdSet()
    if read_done:
        out.prepare()
        done, failed_before = done_ids(out, retry_failed)
    return Preflight(spec, endpoint, source, total, out, done, failed_before)


def done_ids(out: OutputFolder, retry_failed: bool) -> tuple[IdSet, IdSet]:
    """(ids a run skips, of them those whose earlier failure stands): results/, and unless `retry_failed`
    the settled failures."""
    done = out.ids_in(out.results)
    if retry_failed:
        return done, IdSet()
    failed_before = out.settled_failures().without(done)
    return IdSet.union(done, failed_before), failed_before
