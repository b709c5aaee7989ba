"""The rows a run writes: one result record per answered row, one failure record per failed row.

Both engines build their rows here, so results/ and failures/ hold the same columns whichever engine
wrote them (online requests, or the lines of a batch's output file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from pipeline.checkpoint import now_iso
from pipeline.endpoints.base import Endpoint, RowError
from pipeline.errors import APIError
from pipeline.redact import redact
from pipeline.sources.base import Row
from pipeline.spec import JobSpec

COMMON_FIELDS = [pa.field("request_id", pa.string()), pa.field("attempts", pa.int32()),
                 pa.field("latency_ms", pa.float64()), pa.field("deployment", pa.string())]
FAILURE_SCHEMA = pa.schema([
    pa.field("id", pa.string()), pa.field("line", pa.int64()), pa.field("stage", pa.string()),
    pa.field("error_class", pa.string()), pa.field("status", pa.int32()), pa.field("error_code", pa.string()),
    pa.field("message", pa.string()), pa.field("detail", pa.string()), pa.field("request_id", pa.string()),
    pa.field("attempts", pa.int32()), pa.field("failed_at", pa.string()),
])


def result_schema(spec: JobSpec, endpoint: Endpoint) -> pa.Schema:
    keep = [pa.field(name, pa.string()) for name in spec.output.keep]
    return pa.schema([pa.field("id", pa.string()), *endpoint.result_fields(), *COMMON_FIELDS, *keep])


def keep_value(value: Any) -> str | None:
    """An input value as its keep column holds it: text as it is, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def result_record(row: Row, result: Mapping[str, Any], *, request_id: str | None, attempts: int,
                  latency_ms: float | None, deployment: str | None, keep: Iterable[str]) -> dict[str, Any]:
    """One row of results/: the endpoint's columns, how the answer came, and the input columns kept."""
    record = {"id": row.id, **result, "request_id": request_id, "attempts": attempts, "latency_ms": latency_ms,
              "deployment": deployment}
    for name in keep:
        record[name] = keep_value(row.fields.get(name))
    return record


def failure_record(row: Row, error: BaseException, stage: str, attempts: int = 0) -> dict[str, Any]:
    """One row of failures/. `attempts` counts for an error that never went through the retry loop."""
    api = error if isinstance(error, APIError) else None
    return {
        "id": row.id, "line": row.line, "stage": stage, "error_class": type(error).__name__,
        "status": api.status if api else None, "error_code": (api.code if api else None) or error_code(error),
        "message": redact(api.message if api else str(error)), "detail": api.detail if api else None,
        "request_id": api.request_id if api else None,
        "attempts": (api.attempts if api else 0) or attempts, "failed_at": now_iso(),
    }


def error_code(error: BaseException) -> str:
    """The code a failure without the service's own is counted under."""
    return "invalid_row" if isinstance(error, RowError) else type(error).__name__
