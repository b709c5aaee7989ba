"""The small interface every endpoint kind implements. Endpoints are pure: no session, no retries.

    prepare(row)     -> Item               validate one row (raise RowError for a bad row)
    group(items)     -> batches            one row per request, or many (embeddings)
    build(batch)     -> Request            body, token estimate, how to read the answer
    parse(req, resp) -> [result dict]      one result per row, columns as in result_fields()
    finish(...)      -> [result dict]      optional file I/O through a FileStore (images, audio)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import pyarrow as pa

from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec


class RowError(Exception):
    """A row that cannot become a request; it goes to failures with this reason."""


@dataclass(slots=True)
class Item:
    """A validated row with what its request needs."""

    row: Row
    payload: Any
    tokens: int = 1


@dataclass(slots=True)
class Request:
    """One HTTP request to send (perhaps several times) and how to read its answer."""

    op: str
    items: list[Item]
    json: dict[str, Any] | None = None
    form: Callable[[], list[FormPart]] | None = None  # multipart, rebuilt for every attempt
    tokens: int = 1  # charged against TPM at send time (Azure's arrival estimate)
    accept: Literal["json", "text", "bytes", "sse"] = "json"


@dataclass(slots=True)
class FormPart:
    """A multipart field: a value, a file streamed from disk (`path`), or a file read whole by `read` when
    the attempt is sent (an object in storage: one in memory per request in flight)."""

    name: str
    value: str | bytes | None = None
    path: str | None = None
    filename: str | None = None
    content_type: str | None = None
    read: Callable[[], bytes] | None = None


@dataclass(slots=True)
class HttpResponse:
    """What the transport hands back for a 2xx answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    latency_s: float
    request_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # parsed SSE data for accept="sse"
    ttft_s: float | None = None
    deployment: str | None = None  # which deployment answered (set by the client)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidResponseError(f"the service answered with a body that is not JSON ({exc})",
                                       status=self.status, request_id=self.request_id) from None


class Endpoint:
    """Base for one endpoint kind. Subclasses set `kind`, `op` and implement prepare/build/parse."""

    kind: ClassVar[str]
    op: ClassVar[str]
    counts_tokens: ClassVar[bool] = True  # whether the TPM bucket applies
    writes_files: ClassVar[bool] = False

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.params = dict(spec.params)

    def prepare(self, row: Row) -> Item:
        raise NotImplementedError

    def group(self, items: Iterable[Item], max_tokens: int | None = None) -> Iterator[list[Item]]:
        """Default: one row per request."""
        for item in items:
            yield [item]

    def build(self, batch: list[Item]) -> Request:
        raise NotImplementedError

    def parse(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        raise NotImplementedError

    def result_fields(self) -> list[pa.Field]:
        raise NotImplementedError

    async def finish(self, request: Request, results: list[dict[str, Any]], files: FileStore) -> list[dict[str, Any]]:
        """I/O after a successful answer (saving images or audio, downloading URLs). Default: none."""
        return results


class FileStore(Protocol):
    """What the runner lends an endpoint for file outputs (a local folder or an object-storage prefix)."""

    async def download(self, url: str) -> bytes: ...

    async def save(self, relative: str, data: bytes) -> object: ...


def text_field(row: Row, column: str) -> str:
    """A non-empty string from a row, or a RowError naming the row and column."""
    value = row.fields.get(column)
    where = f"row {row.id!r} (line {row.line})"
    if value is None:
        raise RowError(f"{where}: no '{column}' value")
    if not isinstance(value, str):
        raise RowError(f"{where}: '{column}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"{where}: '{column}' is empty")
    return value


def fill_template(row: Row, template: str) -> str:
    """Fill `{column}` placeholders from the row; a missing column is a RowError."""
    try:
        text = template.format_map(row.fields)
    except KeyError as exc:
        raise RowError(f"row {row.id!r} (line {row.line}): template needs column {exc.args[0]!r}") from None
    if not text.strip():
        raise RowError(f"row {row.id!r} (line {row.line}): the template gives an empty prompt")
    return text


def prompt_text(row: Row, spec: JobSpec) -> str:
    """The prompt from `template` if given, else the `prompt` column."""
    if spec.input.template:
        return fill_template(row, spec.input.template)
    assert spec.input.prompt is not None
    return text_field(row, spec.input.prompt)


ANSWER_FIELDS = [
    pa.field("finish_reason", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("content_filtered", pa.bool_()),
    pa.field("filter_categories", pa.string()),
]


def answer_columns(first_choice: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """The columns chat and legacy completions share: finish reason, usage, content-filter flags."""
    filtered, categories = filter_flags(first_choice.get("content_filter_results"))
    return {
        "finish_reason": first_choice.get("finish_reason"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "content_filtered": filtered or first_choice.get("finish_reason") == "content_filter",
        "filter_categories": categories,
    }


def filter_flags(results: Any) -> tuple[bool, str | None]:
    """Azure content-filter results -> (any filtered, comma-separated flagged categories)."""
    if not isinstance(results, dict):
        return False, None
    flagged = [name for name, value in results.items()
               if isinstance(value, dict) and (value.get("filtered") or value.get("detected"))]
    return any(isinstance(v, dict) and v.get("filtered") for v in results.values()), ",".join(flagged) or None


@dataclass
class StreamedChoices:
    """Server-sent chunks folded per choice index (chat and legacy completions stream alike)."""

    texts: dict[int, str]
    finish: dict[int, str | None]
    filters: dict[int, Any]
    usage: dict[str, Any]


def fold_stream(events: list[dict[str, Any]], piece: Callable[[dict[str, Any]], str | None]) -> StreamedChoices:
    """Join each choice's text pieces (`piece` reads one from a chunk's choice); keep its finish
    reason, its content-filter results and the usage the last chunk carries."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    filters: dict[int, Any] = {}
    usage: dict[str, Any] = {}
    for event in events:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            index = choice.get("index", 0)
            texts.setdefault(index, []).append(piece(choice) or "")
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
            if choice.get("content_filter_results"):
                filters[index] = choice["content_filter_results"]
    return StreamedChoices({i: "".join(parts) for i, parts in texts.items()}, finish, filters, usage)
