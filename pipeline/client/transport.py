"""One HTTP attempt: send, read, and turn the outcome into an HttpResponse or a typed error.

Nothing else in the code looks at status codes. Nothing the server says is trusted: redirects are
not followed (the request carries the key), bodies are read up to a cap, and an error the server
wraps in a 200 (an error event in a stream, an error object or an HTML page as the answer) is
raised as the typed error it stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import html
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

import aiohttp

from pipeline.endpoints.base import FormPart, HttpResponse, Request
from pipeline.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ContentFilterError,
    InsufficientQuotaError,
    InvalidResponseError,
    RequestTooLargeError,
    ResourceUnavailableError,
    error_class_for_status,
)
from pipeline.redact import redact

CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"})

KiB = 1024
MiB = 1024 * KiB
# The largest answer each route may send, read while it arrives (a 200 MB answer to a 10-token
# request must cost one failed row, not the process's memory). [limits] max_answer_bytes overrides.
# Embeddings: 2048 inputs x 3072 dimensions as a JSON float list (servers that ignore
# encoding_format = "base64"), ~13.5 bytes a float measured, 16 with margin, plus 1 MiB of envelope.
EMBEDDINGS_ANSWER_CAP = 2048 * 3072 * 16 + MiB  # 97 MiB; the base64 we ask for takes a third of it
ANSWER_CAPS: dict[str, int] = {
    "embeddings": EMBEDDINGS_ANSWER_CAP,
    "chat/completions": 16 * MiB,  # logprobs and n > 1 make answers far bigger than their text
    "completions": 16 * MiB,
    "responses": 16 * MiB,  # as chat: reasoning summaries and annotations besides the text
    "audio/transcriptions": 8 * MiB,  # verbose_json with word timestamps of a 25 MB upload
    "audio/translations": 8 * MiB,
    "images/generations": 64 * MiB,  # n base64 PNGs
    "audio/speech": 64 * MiB,  # minutes of wav/pcm
}
DEFAULT_ANSWER_CAP = 64 * MiB  # routes not listed, and image downloads
ERROR_BODY_CAP = 64 * KiB  # only its message is kept (and status_error keeps 300 characters of it)

# What an error object's code or type means when no HTTP status came with it (an error event in a
# stream, an error object inside a 200): the status the same failure has as a plain HTTP answer.
# Matched as parts of the lower-cased code, then type; anything else is a server error (retried).
ERROR_KIND_STATUS: tuple[tuple[str, int], ...] = (
    ("content_filter", 400), ("content_policy", 400), ("responsibleaipolicy", 400),
    ("invalid_request", 400), ("bad_request", 400), ("context_length", 400), ("invalid_prompt", 400),
    ("authentication", 401), ("invalid_api_key", 401), ("unauthorized", 401),
    ("permission", 403), ("forbidden", 403), ("not_found", 404),
    ("rate_limit", 429), ("too_many_requests", 429), ("insufficient_quota", 429),
    ("overloaded", 503), ("unavailable", 503), ("server_error", 500), ("internal", 500),
)
ERROR_PREFIX = re.compile(rb'\s*\{\s*"error"\s*:')
# A 429 for a request the per-minute limit can never admit, as OpenAI words it: "Request too large for
# gpt-4o ... on tokens per min (TPM): Limit 30000, Requested 50000." (a plain 429 says "Used ..., Requested").
TOO_LARGE_TEXT = re.compile(r"request too large", re.IGNORECASE)
LIMIT_REQUESTED = re.compile(r"Limit:? (\d+), Requested:? (\d+)", re.IGNORECASE)

# Where a 429's wait is said, first found wins: the openai SDK's order, then what gateways send.
# LiteLLM passes the provider's headers on with an `llm_provider-` prefix and answers its own rpm limit
# with `llm_provider-retry-after: 60`; `x-ms-retry-after-ms` is Azure Resource Manager's.
RETRY_AFTER_MS_HEADERS = ("retry-after-ms", "llm_provider-retry-after-ms", "x-ms-retry-after-ms")
RETRY_AFTER_HEADERS = ("retry-after", "llm_provider-retry-after", "x-retry-after")
# The service's request id, else one a gateway gives the call (LiteLLM's x-litellm-call-id): a failure
# row or a result should always name something the operator can look up in some log.
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "llm_provider-x-request-id", "llm_provider-apim-request-id",
                      "x-ms-request-id", "x-litellm-call-id", "x-correlation-id")


class AnswerTooLargeError(APIError):
    """An answer bigger than its cap. Permanent: the same request would get the same answer."""


async def send_once(session: aiohttp.ClientSession, url: str, headers: dict[str, str], request: Request,
                    body: bytes | None, timeout: aiohttp.ClientTimeout,
                    form: Callable[[], list[FormPart]] | None = None, proxy: str | None = None,
                    max_bytes: int | None = None) -> HttpResponse:
    """POST once (a JSON body, or a multipart form built fresh for this attempt).

    The answer is read up to `max_bytes` (default: the route's cap in ANSWER_CAPS).
    Raises APIStatusError subclasses, APIConnectionError, APITimeoutError, InvalidResponseError
    or AnswerTooLargeError.
    """
    start = time.perf_counter()
    cap = max_bytes or answer_cap(request.op)
    form = form or request.form
    data: Any = body if form is None else build_form(await read_parts(form()))
    with typed_http_errors(f"no complete answer within {timeout.total} s"):
        # Never follow a redirect: aiohttp would carry the api-key header to any host it points to.
        async with session.post(url, data=data, headers=headers, timeout=timeout, proxy=proxy,
                                allow_redirects=False) as resp:
            response_headers = _lower(resp.headers)
            await raise_for_status(resp, url)
            if request.accept == "sse":
                events, ttft = await read_sse(resp, start, cap, until_done=request.done_marker)
                raw = b""
            else:
                raw, events, ttft = await read_capped(resp, cap), [], None
                refuse_error_answer(resp.status, response_headers, raw, request.accept)
    return HttpResponse(resp.status, response_headers, raw, time.perf_counter() - start,
                        request_id_of(response_headers), events, ttft)


async def fetch_bytes(session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout,
                      max_bytes: int = DEFAULT_ANSWER_CAP) -> bytes:
    """GET a URL's bytes, up to `max_bytes`. No auth headers (download URLs carry their own
    signature), so redirects may be followed."""
    with typed_http_errors(f"download did not finish within {timeout.total} s", "download failed: "):
        async with session.get(url, timeout=timeout, proxy=proxy_for(url)) as resp:
            await raise_for_status(resp, url)
            body = await read_capped(resp, max_bytes)
    return body


@contextlib.contextmanager
def typed_http_errors(timed_out: str, failed: str = "") -> Iterator[None]:
    """aiohttp's own failures inside the block -> APITimeoutError(`timed_out`) or APIConnectionError
    (prefixed with `failed`), so that callers and the retry policy see only the typed errors of errors.py."""
    try:
        yield
    except TimeoutError:
        raise APITimeoutError(timed_out) from None
    except aiohttp.ClientPayloadError as exc:  # a body that stopped arriving, or arrived malformed
        raise APIConnectionError(f"{failed}the answer was cut off ({_first_line(exc)})") from None
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"{failed}{type(exc).__name__}: {_first_line(exc)}") from None


async def raise_for_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """Raise the typed error of anything but a 2xx answer (a redirect is refused, not followed)."""
    if resp.status >= 300:
        raise await answer_error(resp, url)


def answer_cap(op: str, configured: int | None = None) -> int:
    """The most bytes an answer on this route may have: [limits] max_answer_bytes, else the route's default."""
    return configured or ANSWER_CAPS.get(op, DEFAULT_ANSWER_CAP)


async def read_capped(resp: aiohttp.ClientResponse, cap: int, *, truncate: bool = False) -> bytes:
    """The body, or AnswerTooLargeError as soon as it is known to pass `cap` bytes: from Content-Length
    before reading, else while the chunks arrive (never the whole oversize body in memory).
    With `truncate`, the first `cap` bytes instead (an error body: only its message matters)."""
    declared = resp.content_length
    encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"  # gzip: declares less
    if declared is not None and not encoded:
        if declared <= cap:
            return await resp.read()
        if not truncate:
            resp.close()
            raise _too_large(cap, resp.status, f"it announced {declared} bytes")
    pieces: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        pieces.append(chunk)
        size += len(chunk)
        if size > cap:
            resp.close()
            if truncate:
                return b"".join(pieces)[:cap]
            raise _too_large(cap, resp.status, f"more than {size} bytes were sent")
    return b"".join(pieces)


def _too_large(cap: int, status: int, seen: str) -> AnswerTooLargeError:
    return AnswerTooLargeError(f"the answer is larger than the {_size(cap)} cap ({seen}); if answers this "
                               f"large are expected, raise [limits] max_answer_bytes (now {cap})",
                               status=status, code="answer_too_large")


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n / KiB:.0f} KiB" if n >= KiB else f"{n} bytes"


async def answer_error(resp: aiohttp.ClientResponse, url: str) -> APIStatusError:
    """A 3xx or an error status -> its typed error (an error body is read up to ERROR_BODY_CAP)."""
    headers = _lower(resp.headers)
    if resp.status < 400:
        return redirect_error(url, resp.status, headers)
    return status_error(resp.status, headers, await read_capped(resp, ERROR_BODY_CAP, truncate=True))


def redirect_error(url: str, status: int, headers: dict[str, str]) -> APIStatusError:
    """A redirect is refused, never followed: the request carries credentials, and the service itself
    does not redirect (a same-origin one is refused too: one rule, and base_url is wrong either way)."""
    location = headers.get("location")
    target = urllib.parse.urljoin(url, location) if location else None
    if target is None:
        reason = f"the service answered {status} (a redirect without a Location); redirects are not followed"
    elif _origin(target) == _origin(url):
        reason = (f"the service redirected to {redact(target.split('?')[0])}; redirects are not followed; "
                  "set base_url to the final address")
    else:
        reason = (f"the service redirected to {redact(_origin(target))}; refusing to send credentials to "
                  "another origin; set base_url to the final address")
    return APIStatusError(reason, status=status, code="redirect", request_id=request_id_of(headers))


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port and port != default else "")


def refuse_error_answer(status: int, headers: dict[str, str], raw: bytes, accept: str) -> None:
    """Gateways answer 200 with an error object or an HTML page: raise what it stands for.

    A prefix check first, so a big answer is parsed once, by the endpoint, not twice.
    """
    if ERROR_PREFIX.match(raw, 0, 64):
        try:
            data = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError: not an error object after all
            return
        error = _error_in(data) if isinstance(data, dict) else None
        if error is not None:
            raise error_from_object(error, headers, data)
    elif raw[:64].lstrip().startswith(b"<") and (accept == "json" or "html" in headers.get("content-type", "")):
        raise InvalidResponseError(f"the service answered HTTP {status} with an HTML page, not an answer: "
                                   f"{_page_text(raw)}", status=status, request_id=request_id_of(headers))


def proxy_for(url: str) -> str | None:
    """HTTP(S)_PROXY / NO_PROXY from the environment, looked up once per base URL.

    aiohttp's trust_env does the same lookup (and a .netrc read) in a thread on every request,
    which was most of the client's CPU per request.
    """
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def request_id_of(headers: dict[str, str]) -> str | None:
    return next((headers[name] for name in REQUEST_ID_HEADERS if headers.get(name)), None)


async def read_sse(resp: aiohttp.ClientResponse, start: float, cap: int = DEFAULT_ANSWER_CAP,
                   until_done: bool = True) -> tuple[list[dict[str, Any]], float | None]:
    """Read `data:` lines up to `[DONE]`; a stream that stops before it is a connection error (unless not
    `until_done`: then the body's end ends it), an error event is the typed error it carries, and more than
    `cap` bytes is AnswerTooLargeError."""
    if resp.content_type == "application/json":  # refused before any event: an error object, not a stream
        refuse_error_answer(resp.status, _lower(resp.headers), await read_capped(resp, cap), "json")
        raise InvalidResponseError("stream = true, but the service answered with JSON, not an event stream",
                                   status=resp.status, request_id=request_id_of(_lower(resp.headers)))
    events: list[dict[str, Any]] = []
    ttft: float | None = None
    named_error = False  # the event's `event: error` line, which comes before its data
    async for raw_line in _lines(resp, cap):
        line = raw_line.strip()
        if line.startswith(b"event:"):
            named_error = line[6:].strip() == b"error"
        if not line.startswith(b"data:"):
            named_error = named_error and bool(line)  # a blank line ends the event
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return events, ttft
        event = _event_json(payload)
        # A Responses `{"type": "error"}` event is one even without its `event: error` line.
        error = _error_in(event) or (event if named_error or event.get("type") == "error" else None)
        if error is not None:
            raise error_from_object(error, _lower(resp.headers), event)
        if ttft is None and _carries_text(event):
            ttft = time.perf_counter() - start
        events.append(event)
    if not until_done:
        return events, ttft
    raise APIConnectionError("the event stream ended before [DONE]")


def _carries_text(event: dict[str, Any]) -> bool:
    """Whether an event holds text of the answer (for the time to first token): a chat delta's content,
    or a Responses `response.output_text.delta`."""
    if event.get("type") == "response.output_text.delta":
        return bool(event.get("delta"))
    return any((c.get("delta") or {}).get("content") for c in event.get("choices") or [])


async def _lines(resp: aiohttp.ClientResponse, cap: int) -> AsyncIterator[bytes]:
    """The stream's lines, counted against `cap` as the chunks arrive. Split here rather than by
    aiohttp's readline, which raises LineTooLong (no ClientError) past 512 KiB in one line (3.14)."""
    partial: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            resp.close()
            raise _too_large(cap, resp.status, f"more than {size} bytes of events were sent")
        *lines, rest = chunk.split(b"\n")
        if lines:
            lines[0] = b"".join([*partial, lines[0]])
            partial = []
            for line in lines:
                yield line
        if rest:
            partial.append(rest)
    if partial:
        yield b"".join(partial)


def _event_json(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except UnicodeDecodeError as exc:
        raise APIConnectionError(f"the event stream held a line that is not valid UTF-8 ({exc.reason} at "
                                 f"byte {exc.start})") from None
    except json.JSONDecodeError:
        raise APIConnectionError("the event stream held a line that is not JSON") from None
    if not isinstance(event, dict):
        raise APIConnectionError("the event stream held a line that is not a JSON object")
    return event


async def read_parts(parts: list[FormPart]) -> list[FormPart]:
    """The parts of one attempt with their files made ready off the event loop, where a slow or network disk
    would hold every worker: an object in storage read whole, a local file opened (aiohttp then reads it in
    its executor). Files opened before a failure are closed."""
    ready: list[FormPart] = []
    try:
        for part in parts:
            ready.append(await _ready(part))
    except BaseException:
        for part in ready:
            if isinstance(part, _OpenedFile):
                part.handle.close()
        raise
    return ready


@dataclasses.dataclass(slots=True)
class _OpenedFile(FormPart):
    """A file part whose file read_parts opened for this attempt; aiohttp closes it once it is sent."""

    handle: IO[bytes] = dataclasses.field(kw_only=True)


async def _ready(part: FormPart) -> FormPart:
    if part.read is not None:
        return dataclasses.replace(part, value=await asyncio.to_thread(part.read), read=None)
    if part.path is not None:
        return _OpenedFile(part.name, path=part.path, filename=part.filename, content_type=part.content_type,
                           handle=await _open_off_loop(part.path))
    return part


async def _open_off_loop(path: str) -> IO[bytes]:
    """open() in a thread; cancelled while it runs (the run ends), the file is closed once open, not leaked."""
    opening = asyncio.ensure_future(asyncio.to_thread(_open_binary, path))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_when_open)
        raise


def _open_binary(path: str) -> IO[bytes]:
    return open(path, "rb")  # aiohttp closes it once sent


def _close_when_open(opening: asyncio.Future[IO[bytes]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def build_form(parts: list[FormPart]) -> aiohttp.FormData:
    """Multipart body; file parts are streamed by aiohttp from the file read_parts opened (parts that did not
    go through read_parts, as batch uploads, are opened here)."""
    form = aiohttp.FormData()
    for part in parts:
        if part.path is not None:
            handle = part.handle if isinstance(part, _OpenedFile) else open(part.path, "rb")  # noqa: SIM115
            form.add_field(part.name, handle, filename=part.filename,
                           content_type=part.content_type or "application/octet-stream")
        elif part.filename is not None:  # a file's bytes already in memory
            form.add_field(part.name, part.value or b"", filename=part.filename,
                           content_type=part.content_type or "application/octet-stream")
        else:
            form.add_field(part.name, part.value if part.value is not None else "")
    return form


def status_error(status: int, headers: dict[str, str], body: bytes) -> APIStatusError:
    """An error answer -> the SDK's exception class, with code, message, request id and retry-after."""
    return typed_error(status, headers, _error_object(body), _page_text(body) or f"HTTP {status}")


def error_from_object(error: dict[str, Any], headers: dict[str, str], outer: dict[str, Any]) -> APIStatusError:
    """An error object that came without an error status (a stream's error event, a 200's body):
    the status it declares, else the one its code or type stands for (unknown: a server error)."""
    status = _declared_status(error) or _declared_status(outer) or _inferred_status(error)
    if error.get("code") is None and error.get("type"):  # then the type is all that names the failure
        error = {**error, "code": error["type"]}
    return typed_error(status, headers, error, str(error.get("message") or "the service sent an error"))


def typed_error(status: int, headers: dict[str, str], error: dict[str, Any], fallback: str) -> APIStatusError:
    """The exception class for a status and error object (content filtering has its own)."""
    code = error.get("code")
    code = str(code) if code is not None else None
    message = str(error.get("message") or fallback)
    inner = error.get("innererror") or error.get("inner_error") or {}
    inner = inner if isinstance(inner, dict) else {}
    detail = None
    cls: type[APIStatusError] = error_class_for_status(status)
    if status == 429:
        cls = _rate_limit_class(code or str(error.get("type") or ""), message)
    if status == 400 and (code in CONTENT_FILTER_CODES or inner.get("code") in CONTENT_FILTER_CODES):
        cls = ContentFilterError
        filters = inner.get("content_filter_result") or inner.get("content_filter_results")
        detail = json.dumps(filters, sort_keys=True) if filters else None
    return cls(redact(message), status=status, code=code, request_id=request_id_of(headers),
               retry_after=retry_after_of(headers), detail=detail)


def _rate_limit_class(kind: str, message: str) -> type[APIStatusError]:
    """Which 429 this is: billing (insufficient_quota), a request that can never fit, or the pacing window."""
    if kind.lower() == "insufficient_quota":
        return InsufficientQuotaError
    if kind.lower() == "resource_unavailable":
        return ResourceUnavailableError
    sizes = LIMIT_REQUESTED.search(message)
    if TOO_LARGE_TEXT.search(message) or (sizes is not None and int(sizes.group(2)) > int(sizes.group(1))):
        return RequestTooLargeError
    return error_class_for_status(429)


def _error_in(data: dict[str, Any]) -> dict[str, Any] | None:
    """The error object of an event or body: `{"error": {...}}` or `{"error": "text"}`."""
    error = data.get("error")
    if isinstance(error, dict):
        return error
    return {"message": error} if isinstance(error, str) and error else None


def _declared_status(data: dict[str, Any]) -> int | None:
    for key in ("status", "status_code"):
        value = data.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).isdigit() \
                and 400 <= int(value) <= 599:
            return int(value)
    return None


def _inferred_status(error: dict[str, Any]) -> int:
    for field in ("code", "type"):
        name = str(error.get(field) or "").lower()
        if name.isdigit() and 400 <= int(name) <= 599:  # Azure's {"code": "429"}
            return int(name)
        for part, status in ERROR_KIND_STATUS:
            if part in name:
                return status
    return 500


def _page_text(body: bytes) -> str:
    """What an error body says in a line: its text, or an HTML page's first line of text."""
    text = body[:4 * KiB].decode("utf-8", "replace").strip()
    if not text.startswith("<"):
        return text[:300]
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", "", text)
    lines = (html.unescape(line).strip() for line in re.split(r"<[^>]*>|\n", text))
    return next((line[:300] for line in lines if line), "an HTML page without text")


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"]
    return data if isinstance(data, dict) else {}


def retry_after_of(headers: dict[str, str]) -> float | None:
    """How long the service asks us to wait: milliseconds, else seconds or an HTTP date, in the header
    spellings of RETRY_AFTER_MS_HEADERS and RETRY_AFTER_HEADERS (the first present and readable wins)."""
    for name in RETRY_AFTER_MS_HEADERS:
        if headers.get(name) and (millis := _number(headers[name])) is not None:
            return max(0.0, millis / 1000)
    for name in RETRY_AFTER_HEADERS:
        if headers.get(name) and (seconds := _seconds_or_date(headers[name])) is not None:
            return seconds
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "nan" and "inf" parse, and mean nothing here


def _seconds_or_date(value: str) -> float | None:
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["ANSWER_CAPS", "DEFAULT_ANSWER_CAP", "ERROR_BODY_CAP", "AnswerTooLargeError", "KiB", "MiB",
           "answer_cap", "answer_error", "build_form", "error_from_object", "fetch_bytes", "proxy_for",
           "raise_for_status", "read_capped", "read_parts", "read_sse", "redirect_error", "refuse_error_answer",
           "retry_after_of", "send_once", "status_error", "typed_error", "typed_http_errors"]
