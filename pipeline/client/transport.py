"""One HTTP attempt: send, read, and turn the outcome into an HttpResponse or a typed error.

Nothing else in the code looks at status codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp

from pipeline.endpoints.base import FormPart, HttpResponse, Request
from pipeline.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ContentFilterError,
    error_class_for_status,
)
from pipeline.redact import redact

CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"})


async def send_once(session: aiohttp.ClientSession, url: str, headers: dict[str, str], request: Request,
                    body: bytes | None, timeout: aiohttp.ClientTimeout,
                    form: Callable[[], list[FormPart]] | None = None, proxy: str | None = None) -> HttpResponse:
    """POST once (a JSON body, or a multipart form built fresh for this attempt).

    Raises APIStatusError subclasses, APIConnectionError or APITimeoutError.
    """
    start = time.perf_counter()
    form = form or request.form
    data: Any = body if form is None else build_form(await read_parts(form()))
    try:
        async with session.post(url, data=data, headers=headers, timeout=timeout, proxy=proxy) as resp:
            response_headers = {k.lower(): v for k, v in resp.headers.items()}
            if resp.status >= 400:
                raw = await resp.read()
                raise status_error(resp.status, response_headers, raw)
            if request.accept == "sse":
                events, ttft = await read_sse(resp, start)
                raw = b""
            else:
                raw, events, ttft = await resp.read(), [], None
    except TimeoutError:
        raise APITimeoutError(f"no complete answer within {timeout.total} s") from None
    except aiohttp.ClientPayloadError as exc:
        raise APIConnectionError(f"the answer was cut off ({_first_line(exc)})") from None
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"{type(exc).__name__}: {_first_line(exc)}") from None
    return HttpResponse(resp.status, response_headers, raw, time.perf_counter() - start,
                        request_id_of(response_headers), events, ttft)


async def fetch_bytes(session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout) -> bytes:
    """GET a URL's bytes (no auth headers: download URLs carry their own signature)."""
    try:
        async with session.get(url, timeout=timeout, proxy=proxy_for(url)) as resp:
            body = await resp.read()
            if resp.status >= 400:
                raise status_error(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
            return body
    except TimeoutError:
        raise APITimeoutError(f"download did not finish within {timeout.total} s") from None
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"download failed: {type(exc).__name__}: {_first_line(exc)}") from None


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


def request_id_of(headers: dict[str, str]) -> str | None:
    return headers.get("x-request-id") or headers.get("apim-request-id")


async def read_sse(resp: aiohttp.ClientResponse, start: float) -> tuple[list[dict[str, Any]], float | None]:
    """Read `data:` lines up to `[DONE]`; a stream that stops before it is a connection error."""
    events: list[dict[str, Any]] = []
    ttft: float | None = None
    async for raw_line in resp.content:
        line = raw_line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return events, ttft
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            raise APIConnectionError("the event stream held a line that is not JSON") from None
        if ttft is None and any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
            ttft = time.perf_counter() - start
        events.append(event)
    raise APIConnectionError("the event stream ended before [DONE]")


async def read_parts(parts: list[FormPart]) -> list[FormPart]:
    """Parts read whole by a callable (an object in storage), read in a thread for this attempt only."""
    loaded = []
    for part in parts:
        if part.read is not None:
            part = dataclasses.replace(part, value=await asyncio.to_thread(part.read), read=None)
        loaded.append(part)
    return loaded


def build_form(parts: list[FormPart]) -> aiohttp.FormData:
    """Multipart body; file parts are opened here and streamed by aiohttp."""
    form = aiohttp.FormData()
    for part in parts:
        if part.path is not None:
            form.add_field(part.name, open(part.path, "rb"), filename=part.filename,  # noqa: SIM115
                           content_type=part.content_type or "application/octet-stream")
        elif part.filename is not None:  # a file's bytes already in memory
            form.add_field(part.name, part.value or b"", filename=part.filename,
                           content_type=part.content_type or "application/octet-stream")
        else:
            form.add_field(part.name, part.value if part.value is not None else "")
    return form


def status_error(status: int, headers: dict[str, str], body: bytes) -> APIStatusError:
    """An error answer -> the SDK's exception class, with code, message, request id and retry-after."""
    error = _error_object(body)
    code = error.get("code")
    code = str(code) if code is not None else None
    message = str(error.get("message") or body[:300].decode("utf-8", "replace") or f"HTTP {status}")
    inner = error.get("innererror") or error.get("inner_error") or {}
    detail = None
    cls: type[APIStatusError] = error_class_for_status(status)
    if status == 400 and (code in CONTENT_FILTER_CODES or inner.get("code") in CONTENT_FILTER_CODES):
        cls = ContentFilterError
        filters = inner.get("content_filter_result") or inner.get("content_filter_results")
        detail = json.dumps(filters, sort_keys=True) if filters else None
    return cls(redact(message), status=status, code=code, request_id=request_id_of(headers),
               retry_after=retry_after_of(headers), detail=detail)


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"]
    return data if isinstance(data, dict) else {}


def retry_after_of(headers: dict[str, str]) -> float | None:
    """retry-after-ms, else retry-after as seconds or an HTTP date (the openai SDK's order)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["build_form", "fetch_bytes", "proxy_for", "read_parts", "read_sse", "retry_after_of", "send_once",
           "status_error"]
