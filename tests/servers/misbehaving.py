"""A scripted misbehaving HTTP server on 127.0.0.1: each name answers as its script says.

    with MisbehavingServer() as server:
        base = server.script("cut", sse({"choices": []}, error_event("server_error", "boom")))
        ...  # POST base + "/chat/completions"
        server.seen("cut")  # what it received, headers included

The first path segment picks the script, so one server serves many (`base_url = server.url + "/cut"`);
the rest of the path is ignored. A script of several handlers answers one request each in turn and
repeats the last. It runs on its own loop in a daemon thread (like EmulatorThread), so sync tests,
async tests and runs in a subprocess can all talk to it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MiB = 1 << 20


@dataclass(frozen=True)
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class MisbehavingServer:
    """An aiohttp app in a daemon thread that answers each script name with its handlers."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._scripts: dict[str, list[Handler]] = {}
        self._seen: list[tuple[str, Seen]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="misbehaving", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> MisbehavingServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def script(self, name: str, *handlers: Handler) -> str:
        """Answer requests under /name with these handlers in turn; returns the base URL for them."""
        self._scripts[name] = list(handlers)
        return f"{self.url}/{name}"

    def seen(self, name: str | None = None) -> list[Seen]:
        return [seen for script, seen in list(self._seen) if name is None or script == name]

    async def _start(self) -> str:
        app = web.Application(client_max_size=64 * MiB)
        app.router.add_route("*", "/{name}/{rest:.*}", self._answer)
        app.router.add_route("*", "/{name}", self._answer)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{self._host}:{port}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        count = sum(1 for script, _ in self._seen if script == name)
        self._seen.append((name, Seen(request.method, request.path_qs,
                                      {k.lower(): v for k, v in request.headers.items()}, body)))
        handlers = self._scripts.get(name)
        if not handlers:
            return web.json_response({"error": {"message": f"no script {name!r}", "code": "not_scripted"}},
                                     status=404)
        return await handlers[min(count, len(handlers) - 1)](request)


# ---------------------------------------------------------------------------------------- handlers


def json_answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)
    return handle


def chat_body(text: str = "ok") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def chat_answer(text: str = "ok") -> Handler:
    return json_answer(chat_body(text))


def raw_answer(body: bytes, status: int = 200, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, headers={"Content-Type": content_type, **(headers or {})})
    return handle


def html_page(status: int, title: str, text: str = "") -> Handler:
    page = (f"<!DOCTYPE html>\n<html><head><style>body {{color: red}}</style><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{text}</p><hr><center>nginx</center></body></html>").encode()
    return raw_answer(page, status, "text/html")


def redirect(location: str, status: int = 307) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})
    return handle


def chunk_event(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """A chat completion chunk carrying `text` (and, on a stream's last chunk, its finish reason)."""
    choice: dict[str, Any] = {"index": 0, "delta": {"content": text}}
    if finish_reason:
        choice["finish_reason"] = finish_reason
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [choice]}


def error_event(code: str | None, message: str, type_: str | None = None, named: bool = False,
                **fields: Any) -> bytes:
    """An error event as OpenAI streams it: `data: {"error": {...}}`; `named` adds an `event: error` line
    and puts the fields at the top of the data, as some servers do."""
    error = {"message": message, "type": type_, "code": code, **fields}
    if named:
        return b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def sse(*events: dict[str, Any] | bytes, done: bool = True) -> Handler:
    """An event stream: dicts become `data:` events, bytes are sent as they are; then [DONE]."""
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(event if isinstance(event, bytes) else b"data: " + json.dumps(event).encode() + b"\n\n")
        if done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    return handle


def huge_stream(total: int, status: int = 200, piece: int = MiB) -> Handler:
    """A chat answer of `total` bytes sent in pieces with no Content-Length (chunked), valid JSON if read
    to the end; it stops when the client hangs up."""
    head = b'{"id": "chatcmpl-huge", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "'
    tail = b'"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 10}}'

    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        filler = b"x" * piece
        try:
            await resp.write(head)
            for _ in range(max(0, total - len(head) - len(tail)) // piece):
                await resp.write(filler)
            await resp.write(tail)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client hung up, as it should
            pass
        return resp
    return handle


def huge_length(declared: int, sent: int = 64 * 1024) -> Handler:
    """Announce `declared` bytes, send `sent`, then stall: a client that trusts Content-Length waits."""
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = declared
        await resp.prepare(request)
        try:
            await resp.write(b'{"data": "' + b"x" * sent)
            for _ in range(100):  # up to 5 s, or until the client hangs up
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.05)
        except (ConnectionError, RuntimeError):
            pass
        return resp
    return handle


def gzip_bomb(inflated: int) -> Handler:
    """A small gzip body (Content-Length true for it) that inflates to `inflated` bytes."""
    packed = gzip.compress(b'{"data": "' + b"0" * inflated + b'"}', compresslevel=9)
    return raw_answer(packed, headers={"Content-Encoding": "gzip"})


def by_body(cases: dict[str, Handler], default: Handler) -> Handler:
    """The handler of the first case whose text is in the request body (one hostile row among good ones)."""
    async def handle(request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode("utf-8", "replace")
        for text, handler in cases.items():
            if text in body:
                return await handler(request)
        return await default(request)
    return handle
