"""The small interface every endpoint kind implements. Endpoints are pure: no session, no retries.

    needs(row)       -> [FileNeed]         files the row names that must be read first (the source reads them)
    prepare(row)     -> Item               validate one row (raise RowError for a bad row)
    group(items)     -> batches            one row per request, or many (embeddings)
    build(batch)     -> Request            body, token estimate, how to read the answer
    parse(req, resp) -> [result dict]      one result per row, columns as in result_fields(): the
                                           subclass's parse_answer, then every value checked against
                                           its column (nothing a part write would refuse gets through)
    outputs(...)     -> [[FileOutput]]     files the answers leave (images, audio, sidecars; a sink writes them)
    with_files(...)  -> [result dict]      the results with the columns naming the files written
    usage(results)   -> Usage              billing units, for the run's totals and cost estimate
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from pipeline.endpoints.files import FileNeed, FileOutput, Usage, WrittenFile
from pipeline.errors import AnswerCountError, InvalidResponseError
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
    # An event stream ends with `data: [DONE]` (chat, completions), else it was cut off. False: it ends with
    # the body (the Responses API, whose last event says how the answer ended: the endpoint checks it).
    done_marker: bool = True


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
    """Base for one endpoint kind. Subclasses set `kind`, `op` and implement prepare/build/parse_answer."""

    kind: ClassVar[str]
    op: ClassVar[str]
    counts_tokens: ClassVar[bool] = True  # whether the TPM bucket applies
    writes_files: ClassVar[bool] = False

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.params = dict(spec.params)
        self._checks: dict[str, ValueCheck] | None = None  # per column, built from result_fields() on first use

    def needs(self, row: Row) -> list[FileNeed]:
        """Files the row names that prepare() needs read (they arrive in `row.files`). Default: none."""
        return []

    def prepare(self, row: Row) -> Item:
        raise NotImplementedError

    def group(self, items: Iterable[Item], max_tokens: int | None = None) -> Iterator[list[Item]]:
        """Default: one row per request."""
        for item in items:
            yield [item]

    def build(self, batch: list[Item]) -> Request:
        raise NotImplementedError

    def parse(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        """One result per input, every value one its Arrow column can hold, or InvalidResponseError:
        a bad answer is retried and then becomes a failure row, never an error inside a part write."""
        try:
            results = self.parse_answer(request, response)
        except InvalidResponseError as error:  # helpers need not know which response they read
            error.status = error.status or response.status
            error.request_id = error.request_id or response.request_id
            raise
        if len(results) != len(request.items):
            raise AnswerCountError(f"the answer holds {len(results)} results for {len(request.items)} inputs",
                                   status=response.status, request_id=response.request_id,
                                   expected=len(request.items), got=len(results))
        checks = self._column_checks()
        for result in results:
            check_result(result, checks, response)
        return results

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        """The answer as one result dict per input (subclasses; callers use `parse`, which checks it)."""
        raise NotImplementedError

    def result_fields(self) -> list[pa.Field]:
        raise NotImplementedError

    def _column_checks(self) -> dict[str, ValueCheck]:
        # Built once: the schema is fixed by the spec, and parse runs once per request.
        if self._checks is None:
            self._checks = {f.name: value_check(f.type) for f in self.result_fields()}
        return self._checks

    def outputs(self, request: Request, results: list[dict[str, Any]]) -> list[list[FileOutput]]:
        """The files each result leaves beside its row, written before the row is committed. Default: none."""
        return [[] for _ in results]

    def with_files(self, request: Request, results: list[dict[str, Any]],
                   written: list[list[WrittenFile]]) -> list[dict[str, Any]]:
        """The results with the columns that name the files written for them. Default: as they are."""
        return results

    def usage(self, results: list[dict[str, Any]]) -> Usage:
        """Billing units of one request's results. Default: the tokens the service reported."""
        return Usage(tokens_in=sum(r.get("prompt_tokens") or 0 for r in results),
                     tokens_out=sum(r.get("completion_tokens") or 0 for r in results))


# ---- checking answers against the output schema

ValueCheck = Callable[[Any], Any]  # the value to store, or ValueError saying what is wrong with it


def check_result(result: dict[str, Any], checks: dict[str, ValueCheck], response: HttpResponse) -> None:
    """Check (and normalise, e.g. 3.0 -> 3) every column value of one result, in place. Keys without a
    column (`_images`, `_raw`: handed from parse to finish) and columns finish() fills are left alone."""
    for name, value in result.items():
        check = checks.get(name)
        if check is None:
            continue
        try:
            result[name] = check(value)
        except ValueError as exc:
            raise InvalidResponseError(f"the answer does not fit column '{name}': {exc}",
                                       status=response.status, request_id=response.request_id) from None


def value_check(type_: pa.DataType) -> ValueCheck:
    """What values a column of this Arrow type may receive, as a function (built once per column)."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return _string
    if pa.types.is_boolean(type_):
        return _boolean
    if pa.types.is_integer(type_):
        return _integer_check(type_.bit_width, pa.types.is_signed_integer(type_))
    if pa.types.is_floating(type_):
        return _number
    if (pa.types.is_list(type_) or pa.types.is_large_list(type_)) and pa.types.is_floating(type_.value_type):
        return _vector
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _list_check(value_check(type_.value_type))
    if pa.types.is_struct(type_):
        return _struct_check({type_.field(i).name: value_check(type_.field(i).type) for i in range(type_.num_fields)})
    return lambda value: value  # a type no endpoint uses yet: pyarrow decides


def _kind(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("nan", "NaN").replace("inf", "Infinity")
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{_kind(value)} is not a string")


def _boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{_kind(value)} is not a boolean")


def _integer_check(bits: int, signed: bool) -> ValueCheck:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)

    def integer(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():  # 12.0 from a server that writes floats
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_kind(value)} is not an integer")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for int{bits}")
        return value

    return integer


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{_kind(value)} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"{_kind(value)} is not a finite number")
    return float(value)


def _vector(value: Any) -> np.ndarray:
    """A non-empty 1-D array of finite floats: the writer builds one contiguous column from them."""
    if isinstance(value, list | tuple):
        try:
            value = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError("the vector holds values that are not numbers") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise ValueError(f"{_kind(value)} is not a vector of floats")
    if value.ndim != 1 or not len(value):
        raise ValueError(f"the vector has shape {value.shape}, not one non-empty row")
    if not np.isfinite(value).all():
        raise ValueError("the vector holds NaN or infinite values")
    return value


def _list_check(item: ValueCheck) -> ValueCheck:
    def checked_list(value: Any) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError(f"{_kind(value)} is not a list")
        return [item(v) for v in value]

    return checked_list


def _struct_check(fields: dict[str, ValueCheck]) -> ValueCheck:
    def checked_struct(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"{_kind(value)} is not an object")
        return {name: check(value.get(name)) for name, check in fields.items()}

    return checked_struct


def usage_counts(usage: Any, names: Iterable[str]) -> dict[str, int]:
    """The named token counts of an answer's `usage`: each a finite non-negative integer, or absent.
    No usage at all is allowed (some compatible servers send none); NaN or -1 is an invalid answer."""
    if usage is None:
        return {}
    if not isinstance(usage, dict):
        raise InvalidResponseError(f"the answer's usage is {_kind(usage)}, not an object")
    counts = {}
    for name in names:
        value = usage.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidResponseError(f"the answer's usage.{name} is {_kind(value)}, not a count of tokens")
        if value < 0:
            raise InvalidResponseError(f"the answer's usage.{name} is {value}, not a count of tokens")
        counts[name] = value
    return counts


def detail_count(usage: Any, details: str, name: str) -> int | None:
    """A count inside a usage details object (`completion_tokens_details.reasoning_tokens`...), checked like
    usage_counts; None when the service sends no such detail."""
    if not isinstance(usage, dict) or usage.get(details) is None:
        return None
    inner = usage[details]
    if not isinstance(inner, dict):
        raise InvalidResponseError(f"the answer's usage.{details} is {_kind(inner)}, not an object")
    try:
        return usage_counts(inner, (name,)).get(name)
    except InvalidResponseError as exc:
        raise InvalidResponseError(exc.message.replace("usage.", f"usage.{details}.")) from None


TEXT_PART_TYPES = frozenset({"text", "output_text"})


def content_text(content: Any) -> str | None:
    """A message's content as one string. Some OpenAI-compatible servers send a list of parts
    (`[{"type": "text", "text": "..."}]`): text parts are joined; anything else is an invalid answer."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if not isinstance(kind, str) or kind not in TEXT_PART_TYPES or not isinstance(part.get("text"), str):
                shown = kind if isinstance(kind, str) else _kind(part)
                raise InvalidResponseError(f"the answer's content holds a part that is not text ({shown})")
            pieces.append(part["text"])
        return "".join(pieces)
    raise InvalidResponseError(f"the answer's content is {_kind(content)}, not text")


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


def answer_columns(first_choice: dict[str, Any], usage: Any) -> dict[str, Any]:
    """The columns chat and legacy completions share: finish reason, usage, content-filter flags."""
    filtered, categories = filter_flags(first_choice.get("content_filter_results"))
    counts = usage_counts(usage, ("prompt_tokens", "completion_tokens", "total_tokens"))
    return {
        "finish_reason": first_choice.get("finish_reason"),
        "prompt_tokens": counts.get("prompt_tokens"),
        "completion_tokens": counts.get("completion_tokens"),
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


def fold_stream(events: list[dict[str, Any]], piece: Callable[[dict[str, Any]], Any]) -> StreamedChoices:
    """Join each choice's text pieces (`piece` reads one from a chunk's choice); keep its finish
    reason, its content-filter results and the usage the last chunk carries. A stream that ends
    without a finish reason for a choice was cut short: an invalid answer, not a success."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    filters: dict[int, Any] = {}
    usage: dict[str, Any] = {}
    for event in events:
        if not isinstance(event, dict):
            raise InvalidResponseError(f"a streamed chunk is {_kind(event)}, not an object")
        usage = event.get("usage") or usage
        for choice in _stream_choices(event):
            index = choice.get("index", 0)
            texts.setdefault(index, []).append(content_text(piece(choice)) or "")
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
            if choice.get("content_filter_results"):
                filters[index] = choice["content_filter_results"]
    unfinished = [index for index in sorted(texts) if index not in finish] if texts else [0]
    if unfinished:
        raise InvalidResponseError(f"the stream ended without a finish reason (choice {unfinished[0]})")
    return StreamedChoices({i: "".join(parts) for i, parts in texts.items()}, finish, filters, usage)


def _stream_choices(event: dict[str, Any]) -> list[dict[str, Any]]:
    choices = event.get("choices") or []
    if not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("index", 0), int) for c in choices):
        raise InvalidResponseError("a streamed chunk's choices are not a list of indexed objects")
    return choices
