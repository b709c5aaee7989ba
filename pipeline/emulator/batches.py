"""The Files and Batch APIs: upload a JSONL file, create a batch on it, watch it run, download its output.

    POST   {prefix}/files                    multipart purpose=batch, file=@x.jsonl
    GET    {prefix}/files/{id}[/content]     metadata / bytes;   DELETE {prefix}/files/{id}
    POST   {prefix}/batches                  {input_file_id, endpoint, completion_window: "24h"}
    GET    {prefix}/batches[/{id}]           list (newest first; limit, after) / one
    POST   {prefix}/batches/{id}/cancel
    prefix: /openai (Azure classic, ?api-version=), /openai/v1 (Azure v1), /v1 (OpenAI)

A batch moves validating -> in_progress -> finalizing -> completed (or failed, expired,
cancelling -> cancelled) in a background task. Each line is judged and answered by the same
code as the online routes (flow.py's content filter and faults, ops/), so a batch's output
equals what online calls would have answered.

Test knobs live in `BatchSettings` (`GET|POST /_emulator/batches`, which also shows counters):
a processing delay, expiry after a share of the lines (for every batch, or the next N), the line
limit. A line whose text holds
`[[batchfail]]` fails inside the batch with an error object; `[[fault:KIND:N]]` markers apply
as they do online.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipeline.emulator import bodies
from pipeline.emulator.auth import auth_failure
from pipeline.emulator.exchange import AZURE, AZURE_V1, OPENAI, Exchange, Rejection, invalid
from pipeline.emulator.fault_answers import fault_rejection
from pipeline.emulator.flow import API_VERSION, CONFIG, STATE, check_content_filter, pick_fault
from pipeline.emulator.ops import OPERATIONS
from pipeline.emulator.uploads import read_form

PREFIXES = {AZURE: "/openai", AZURE_V1: "/openai/v1", OPENAI: "/v1"}
# Batch endpoint -> operation. Azure's global batch takes no embeddings (reference section 7).
ENDPOINT_OPS = {"/chat/completions": "chat/completions", "/completions": "completions", "/embeddings": "embeddings",
                "/responses": "responses"}
AZURE_ENDPOINTS = frozenset({"/chat/completions", "/completions", "/responses"})
LINE_LIMITS = {AZURE: 100_000, AZURE_V1: 100_000, OPENAI: 50_000}
MAX_FILE_BYTES = 200 * 1024 * 1024
BATCH_FAIL_MARKER = "[[batchfail]]"
MAX_REPORTED_ERRORS = 20
YIELD_EVERY = 100  # lines answered between yields to the loop, so polls are answered meanwhile
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
UNFINISHED = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


@dataclass
class BatchSettings:
    """Knobs for tests; read when they matter, so a change applies to batches already running."""

    processing_delay_s: float = 0.05  # time a batch stays in_progress before its lines are answered
    expire: bool = False  # end batches "expired" with only expire_fraction of their lines answered
    expire_fraction: float = 0.5
    expire_limit: int | None = None  # expire at most this many batches (None: all), then complete them
    max_lines: int | None = None  # None: the service's limit (100,000 Azure; 50,000 OpenAI)
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "status_details": None}


@dataclass
class Batch:
    id: str
    flavor: str
    endpoint: str
    input_file_id: str
    status: str = "validating"
    created_at: int = field(default_factory=lambda: int(time.time()))
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    counts: Counter[str] = field(default_factory=Counter)  # total, completed, failed
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    cancel_requested: bool = False

    def move(self, status: str) -> None:
        self.status = status
        self.times[f"{status}_at"] = int(time.time())

    def view(self) -> dict[str, Any]:
        stamps = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
                  "cancelled_at")
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": "24h", "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            "expires_at": self.created_at + 86_400, **{name: self.times.get(name) for name in stamps},
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": {k: self.counts[k] for k in ("total", "completed", "failed")}, "metadata": None,
        }


class BatchStore:
    """Files, batches, settings and counters of one emulator (kept apart from EmulatorState)."""

    def __init__(self) -> None:
        self.settings = BatchSettings()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.counters: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    def add_file(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile("file-" + uuid.uuid4().hex, filename, purpose, data)
        self.files[stored.id] = stored
        return stored

    def snapshot(self) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.settings), "counters": dict(self.counters),
                "batches": [b.view() for b in self.batches.values()]}


BATCHES = web.AppKey("emulator.batches", BatchStore)

# --------------------------------------------------------------------------- input validation


@dataclass(frozen=True)
class Line:
    number: int
    custom_id: str
    body: dict[str, Any]


def _problem(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def parse_input(data: bytes, endpoint: str, max_lines: int) -> tuple[list[Line], list[dict[str, Any]]]:
    """An input file's lines, or the service's validation errors (the batch then fails)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return [], [_problem("invalid_json_line", "The file must be UTF-8 without a byte order mark.", 1)]
    raw_lines = [(n, raw) for n, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]
    if not raw_lines:
        return [], [_problem("empty_file", "The input file is empty. Please provide a file with at least one line.")]
    if len(raw_lines) > max_lines:
        return [], [_problem("too_many_tasks", f"The input file has {len(raw_lines)} requests; at most "
                             f"{max_lines} are allowed per batch.")]
    lines: list[Line] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in raw_lines:
        line, problem = _parse_line(number, raw, endpoint)
        if problem is None and line is not None:
            problem = _check_line(line, lines[0] if lines else None, seen)
        if problem is not None:
            problems.append(problem)
        elif line is not None:
            seen.add(line.custom_id)
            lines.append(line)
    return lines, problems[:MAX_REPORTED_ERRORS]


def _parse_line(number: int, raw: bytes, endpoint: str) -> tuple[Line | None, dict[str, Any] | None]:
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, _problem("invalid_json_line", f"Line {number} is not valid JSON.", number)
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str) or not isinstance(
            item.get("body"), dict):
        return None, _problem("invalid_json_line", f"Line {number} needs custom_id, method, url and body.", number)
    if item.get("method") != "POST":
        return None, _problem("invalid_request", f"Line {number}: method must be POST.", number)
    if _normal(str(item.get("url"))) != _normal(endpoint):
        return None, _problem("url_mismatch", f"Line {number}: url {item.get('url')!r} does not match the "
                              f"batch endpoint {endpoint!r}.", number)
    return Line(number, item["custom_id"], item["body"]), None


def _check_line(line: Line, first: Line | None, seen: set[str]) -> dict[str, Any] | None:
    model = line.body.get("model")
    if not isinstance(model, str) or not model:
        return _problem("invalid_request", f"Line {line.number}: body.model is required.", line.number)
    if first is not None and model != first.body.get("model"):
        return _problem("model_mismatch", f"Line {line.number}: model {model!r} differs from the file's first "
                        f"model {first.body.get('model')!r}; use one model per file.", line.number)
    if line.custom_id in seen:
        return _problem("duplicate_custom_id", f"Line {line.number}: custom_id {line.custom_id!r} is used more "
                        "than once.", line.number)
    return None


def _normal(url: str) -> str:
    """Azure takes "/chat/completions" and "/v1/chat/completions" alike."""
    return url.removeprefix("/v1")


# --------------------------------------------------------------------------- answering lines


async def answer_line(request: web.Request, batch: Batch, line: Line) -> tuple[bool, bytes]:
    """One line as the online route would answer it -> (succeeded, output line)."""
    op = OPERATIONS[ENDPOINT_OPS[_normal(batch.endpoint)]]
    version = request.query.get("api-version", "v1")
    x = Exchange(request, request.app[CONFIG], request.app[STATE], batch.flavor, op,
                 deployment=line.body["model"], api_version=version, body=dict(line.body))
    if any(BATCH_FAIL_MARKER in text for text in op.texts(x)):
        return False, _error_line(line, "server_error", "The request failed while the batch ran ([[batchfail]]).")
    request_id = x.request_id if x.azure else "req_" + uuid.UUID(x.request_id).hex
    try:
        if x.body.get("stream"):
            raise invalid("Streaming is not supported in batch requests.", "stream")
        op.validate(x)
        check_content_filter(x)  # the online route's checks, so a line is judged as a request would be
        fault = pick_fault(x)
        if fault is not None:
            raise fault_rejection(x, fault, fault.status or 500)
        response = await op.respond(x)
    except Rejection as rejection:
        return False, _response_line(line, rejection.status, request_id, json.dumps(rejection.body).encode())
    assert isinstance(response, web.Response) and isinstance(response.body, bytes)
    return response.status < 400, _response_line(line, response.status, request_id, response.body)


def _response_line(line: Line, status: int, request_id: str, body: bytes) -> bytes:
    # The answer's JSON bytes are spliced in as they are: no decode and re-encode per line.
    head = json.dumps({"id": "batch_req_" + uuid.uuid4().hex, "custom_id": line.custom_id})[:-1]
    return (f'{head}, "response": {{"status_code": {status}, "request_id": {json.dumps(request_id)}, '
            f'"body": ').encode() + body + b'}, "error": null}\n'


def _error_line(line: Line, code: str, message: str) -> bytes:
    return (json.dumps({"id": "batch_req_" + uuid.uuid4().hex, "custom_id": line.custom_id, "response": None,
                        "error": {"code": code, "message": message}}) + "\n").encode()


# --------------------------------------------------------------------------- running a batch


async def run_batch(request: web.Request, batch: Batch) -> None:
    """The batch's life in the background, from validation to its output files."""
    store = request.app[BATCHES]
    await asyncio.sleep(min(0.01, store.settings.processing_delay_s))
    limit = store.settings.max_lines or LINE_LIMITS[batch.flavor]
    lines, problems = parse_input(store.files[batch.input_file_id].data, batch.endpoint, limit)
    if problems:
        batch.errors = problems
        batch.move("failed")
        return
    batch.counts["total"] = len(lines)
    if not batch.cancel_requested:
        batch.move("in_progress")
    await _processing_delay(store, batch)
    due = len(lines)
    if _expires(store):
        due = int(len(lines) * min(max(store.settings.expire_fraction, 0.0), 1.0))
    outputs, errors, answered = await _answer_lines(request, batch, lines[:due])
    end = "cancelled" if batch.cancel_requested else "expired" if answered < len(lines) else "completed"
    if end != "completed":
        code, message = UNFINISHED[end]
        errors += [_error_line(line, code, message) for line in lines[answered:]]
    batch.move("finalizing")
    _store_outputs(store, batch, outputs, errors)
    batch.move(end)


def _expires(store: BatchStore) -> bool:
    """Whether this batch expires (counted, so expire_limit can let later batches complete)."""
    limit = store.settings.expire_limit
    if not store.settings.expire or (limit is not None and store.counters["expired"] >= limit):
        return False
    store.counters["expired"] += 1
    return True


async def _processing_delay(store: BatchStore, batch: Batch) -> None:
    """Wait out the processing delay, re-reading it so a test may shorten it for a running batch."""
    started = time.monotonic()
    while time.monotonic() - started < store.settings.processing_delay_s and not batch.cancel_requested:  # noqa: ASYNC110
        await asyncio.sleep(min(0.02, store.settings.processing_delay_s))


async def _answer_lines(request: web.Request, batch: Batch,
                        lines: list[Line]) -> tuple[list[bytes], list[bytes], int]:
    """Answer lines in order until done or cancelled -> (output lines, error lines, lines answered)."""
    store = request.app[BATCHES]
    outputs: list[bytes] = []
    errors: list[bytes] = []
    for index, line in enumerate(lines):
        if batch.cancel_requested:
            return outputs, errors, index
        ok, text = await answer_line(request, batch, line)
        (outputs if ok else errors).append(text)
        batch.counts["completed" if ok else "failed"] += 1
        store.counters["lines_answered"] += 1
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
    return outputs, errors, len(lines)


def _store_outputs(store: BatchStore, batch: Batch, outputs: list[bytes], errors: list[bytes]) -> None:
    """Azure always gives both files (the error file empty on success); OpenAI only non-empty ones."""
    azure = batch.flavor != OPENAI
    if outputs or azure:
        batch.output_file_id = store.add_file(f"{batch.id}_output.jsonl", "batch_output", b"".join(outputs)).id
    if errors or azure:
        batch.error_file_id = store.add_file(f"{batch.id}_error.jsonl", "batch_output", b"".join(errors)).id


# --------------------------------------------------------------------------- routes

Action = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def _route(flavor: str, action: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Auth and api-version as the online routes check them, then the action; errors as JSON."""

    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        azure = flavor != OPENAI
        try:
            reason = auth_failure(request.headers, request.app[CONFIG], azure)
            if reason is not None:
                raise Rejection(401, bodies.unauthorized(azure, reason))
            if flavor == AZURE and not API_VERSION.match(request.query.get("api-version", "")):
                raise Rejection(404, bodies.resource_not_found(True, request.method, request.path))
            response = await action(request, flavor)
        except Rejection as rejection:
            response = web.json_response(rejection.body, status=rejection.status, headers=rejection.headers)
        response.headers["x-request-id"] = request_id if azure else "req_" + uuid.UUID(request_id).hex
        response.headers["apim-request-id"] = request_id
        return response

    return handle


def _not_found(flavor: str, kind: str, name: str) -> Rejection:
    if flavor == OPENAI:
        return Rejection(404, bodies.openai_error(f"No such {kind} object: {name}", param="id"))
    return Rejection(404, bodies.azure_error("NotFound", f"{kind} with id '{name}' was not found."))


async def upload_file(request: web.Request, flavor: str) -> web.StreamResponse:
    store = request.app[BATCHES]
    form = await read_form(request, store.settings.max_file_bytes)
    if form.fields.get("purpose") != "batch":
        raise invalid(f"Invalid value for purpose: {form.fields.get('purpose')!r}; use 'batch'.", "purpose",
                      "invalid_value")
    if form.file is None:
        raise invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    store.counters["uploads"] += 1
    return web.json_response(store.add_file(form.filename or "input.jsonl", "batch", form.file).view())


def _file(request: web.Request, flavor: str) -> StoredFile:
    name = request.match_info["file_id"]
    stored = request.app[BATCHES].files.get(name)
    if stored is None:
        raise _not_found(flavor, "File", name)
    return stored


async def get_file(request: web.Request, flavor: str) -> web.StreamResponse:
    return web.json_response(_file(request, flavor).view())


async def get_file_content(request: web.Request, flavor: str) -> web.StreamResponse:
    stored = _file(request, flavor)
    request.app[BATCHES].counters["downloads"] += 1
    return web.Response(body=stored.data, content_type="application/octet-stream")


async def delete_file(request: web.Request, flavor: str) -> web.StreamResponse:
    stored = _file(request, flavor)
    store = request.app[BATCHES]
    del store.files[stored.id]
    store.counters["deletes"] += 1
    return web.json_response({"id": stored.id, "object": "file", "deleted": True})


async def create_batch(request: web.Request, flavor: str) -> web.StreamResponse:
    store = request.app[BATCHES]
    try:
        body = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.")
    endpoint = _batch_endpoint(body.get("endpoint"), flavor)
    if body.get("completion_window") != "24h":
        raise invalid("Invalid value for completion_window: only '24h' is supported.", "completion_window",
                      "invalid_value")
    file_id = str(body.get("input_file_id"))
    if file_id not in store.files:
        raise _not_found(flavor, "File", file_id)
    batch = Batch("batch_" + str(uuid.uuid4()), flavor, endpoint, file_id)
    store.batches[batch.id] = batch
    store.counters["batches_created"] += 1
    task = asyncio.create_task(run_batch(request, batch))
    store.tasks.add(task)
    task.add_done_callback(store.tasks.discard)
    return web.json_response(batch.view())


def _batch_endpoint(value: Any, flavor: str) -> str:
    allowed = AZURE_ENDPOINTS if flavor != OPENAI else frozenset(ENDPOINT_OPS)
    if not isinstance(value, str) or _normal(value) not in allowed:
        shown = ", ".join(sorted(allowed))
        raise invalid(f"Invalid value for endpoint: {value!r}. Supported values are: {shown}.", "endpoint",
                      "invalid_value")
    return value


def _batch(request: web.Request, flavor: str) -> Batch:
    name = request.match_info["batch_id"]
    batch = request.app[BATCHES].batches.get(name)
    if batch is None:
        raise _not_found(flavor, "Batch", name)
    return batch


async def get_batch(request: web.Request, flavor: str) -> web.StreamResponse:
    batch = _batch(request, flavor)
    request.app[BATCHES].counters["batch_gets"] += 1
    return web.json_response(batch.view())


async def list_batches(request: web.Request, flavor: str) -> web.StreamResponse:
    """Newest first, `limit` per page (1-100, default 20), continuing `after` a batch id."""
    store = request.app[BATCHES]
    newest = list(reversed(store.batches.values()))
    after = request.query.get("after")
    ids = [b.id for b in newest]
    start = ids.index(after) + 1 if after in ids else 0
    try:
        limit = min(max(int(request.query.get("limit", "20")), 1), 100)
    except ValueError:
        raise invalid("Invalid value for limit.", "limit") from None
    page = newest[start:start + limit]
    return web.json_response({"object": "list", "data": [b.view() for b in page],
                              "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None,
                              "has_more": start + limit < len(newest)})


async def cancel_batch(request: web.Request, flavor: str) -> web.StreamResponse:
    batch = _batch(request, flavor)
    if batch.status in TERMINAL or batch.status == "finalizing":
        raise Rejection(409, bodies.openai_error(f"Cannot cancel a batch with status {batch.status!r}."))
    request.app[BATCHES].counters["cancels"] += 1
    batch.cancel_requested = True
    batch.move("cancelling")
    return web.json_response(batch.view())


async def get_admin(request: web.Request) -> web.Response:
    return web.json_response(request.app[BATCHES].snapshot())


async def post_admin(request: web.Request) -> web.Response:
    """Update BatchSettings fields from a JSON object; all or nothing, 400 naming the bad field."""
    store = request.app[BATCHES]
    try:
        updates = json.loads(await request.read() or b"{}")
        apply_settings(store.settings, updates if isinstance(updates, dict) else None)
    except ValueError as error:
        return web.json_response({"error": {"message": str(error)}}, status=400)
    return web.json_response(store.snapshot())


_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "processing_delay_s": (int, float), "expire": (bool,), "expire_fraction": (int, float),
    "expire_limit": (int, type(None)), "max_lines": (int, type(None)), "max_file_bytes": (int,),
}


def apply_settings(settings: BatchSettings, updates: dict[str, Any] | None) -> None:
    """Check every update first, then apply them all."""
    if updates is None:
        raise ValueError("expected a JSON object of batch settings")
    for name, value in updates.items():
        kinds = _SETTING_TYPES.get(name)
        if kinds is None:
            raise ValueError(f"unknown batch setting: {name!r}; known: {', '.join(_SETTING_TYPES)}")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{name}: cannot use {value!r}")
    for name, value in updates.items():
        setattr(settings, name, float(value) if float in _SETTING_TYPES[name] else value)


async def _stop_batches(app: web.Application) -> None:
    for task in list(app[BATCHES].tasks):
        task.cancel()


def add_routes(app: web.Application) -> None:
    """Install the store and the routes; call before the online catch-all routes are added."""
    app[BATCHES] = BatchStore()
    app.on_cleanup.append(_stop_batches)
    router = app.router
    for flavor, prefix in PREFIXES.items():
        router.add_post(f"{prefix}/files", _route(flavor, upload_file))
        router.add_get(f"{prefix}/files/{{file_id}}", _route(flavor, get_file))
        router.add_delete(f"{prefix}/files/{{file_id}}", _route(flavor, delete_file))
        router.add_get(f"{prefix}/files/{{file_id}}/content", _route(flavor, get_file_content))
        router.add_post(f"{prefix}/batches", _route(flavor, create_batch))
        router.add_get(f"{prefix}/batches", _route(flavor, list_batches))
        router.add_get(f"{prefix}/batches/{{batch_id}}", _route(flavor, get_batch))
        router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", _route(flavor, cancel_batch))
    router.add_get("/_emulator/batches", get_admin)
    router.add_post("/_emulator/batches", post_admin)
