"""The Files and Batch APIs of one service: upload, create, get, find, download, delete.

Each call goes through the job's auth and the shared tenacity retry policy; one attempt turns
the HTTP outcome into an answer or a typed error with transport's raise_for_status and
typed_http_errors, as online calls do (redirects refused, answers read up to a cap).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.client.auth import Auth
from pipeline.client.retry import retry_cause, retry_policy
from pipeline.client.service import USER_AGENT
from pipeline.client.transport import MiB, build_form, proxy_for, raise_for_status, read_capped, typed_http_errors
from pipeline.client.urls import api_url, routes_for
from pipeline.endpoints.base import FormPart
from pipeline.errors import InvalidResponseError
from pipeline.events import EventSink, Retried, ignore
from pipeline.spec import JobSpec

CHUNK = 1 << 20
ANSWER_CAP = 16 * MiB  # a file or batch object, a page of 100 batches: kilobytes
FILE_CHECK_S = 5.0  # how often to ask whether an upload Azure is still validating ("pending") is ready


class BatchAPI:
    """Files and batches on the job's service."""

    def __init__(self, spec: JobSpec, base_url: str, session: aiohttp.ClientSession, auth: Auth,
                 on_event: EventSink | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, *, op: str = "") -> None:
        # The Files and Batch routes of the API the lines go to (`op`'s: the v1 API for an op only it serves).
        self.service = routes_for(spec.service, op)
        self.base_url = base_url
        self.session = session
        self.auth = auth
        self._sleep = sleep
        self._on_event: EventSink = on_event or ignore
        self._policy = retry_policy(spec.limits.max_attempts, spec.limits.max_retry_wait_s,
                                    lambda state: self._on_event(Retried(cause=retry_cause(
                                        state.outcome.exception() if state.outcome else None),
                                        attempt=state.attempt_number)), sleep)
        self._timeout = aiohttp.ClientTimeout(total=spec.limits.timeout_s)
        # A 200 MB file takes longer than one request's timeout: no total limit, but a stalled socket fails.
        self._transfer_timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.limits.timeout_s,
                                                       sock_read=spec.limits.timeout_s)

    def url(self, path: str) -> str:
        return api_url(self.service, self.base_url, path)

    async def upload(self, path: Path) -> dict[str, Any]:
        """POST files (multipart purpose=batch), then wait while Azure still validates it."""
        def form() -> list[FormPart]:
            return [FormPart("purpose", "batch"),
                    FormPart("file", path=str(path), filename=path.name, content_type="application/jsonl")]

        info = await self._call("POST", "files", form=form, timeout=self._transfer_timeout)
        while info.get("status") in ("pending", "running"):
            await self._sleep(FILE_CHECK_S)
            info = await self._call("GET", f"files/{info['id']}")
        if info.get("status") == "error":
            raise InvalidResponseError(f"the service refused the uploaded file {path.name}: "
                                       f"{info.get('status_details') or 'no details'}")
        return info

    async def create(self, file_id: str, endpoint: str) -> dict[str, Any]:
        # A retry after a lost answer may create a second batch; only the one recorded is ever collected.
        return await self._call("POST", "batches", body={"input_file_id": file_id, "endpoint": endpoint,
                                                         "completion_window": "24h"})

    async def get(self, batch_id: str) -> dict[str, Any]:
        return await self._call("GET", f"batches/{batch_id}")

    async def find_for_file(self, file_id: str) -> dict[str, Any] | None:
        """The batch created on an input file, if any: a run killed after creating one must not create another."""
        after: str | None = None
        while True:
            page = await self._call("GET", "batches", params={"limit": "100", **({"after": after} if after else {})})
            for batch in page.get("data") or []:
                if batch.get("input_file_id") == file_id:
                    return batch
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]

    async def delete_file(self, file_id: str) -> None:
        await self._call("DELETE", f"files/{file_id}")

    async def download(self, file_id: str, destination: Path) -> None:
        """GET files/{id}/content, streamed to `destination` (replaced whole on success)."""
        async for attempt in self._policy.copy():
            with attempt:
                await self._download_once(self.url(f"files/{file_id}/content"), destination)

    async def _download_once(self, url: str, destination: Path) -> None:
        with typed_http_errors("the file download stalled", "download failed: "):
            async with self.session.get(url, headers=await self._headers(), proxy=proxy_for(url),
                                        timeout=self._transfer_timeout, allow_redirects=False) as resp:
                await raise_for_status(resp, url)
                temp = destination.with_name(destination.name + ".part.tmp")
                # Batch mode runs nothing else on the loop meanwhile: chunked local writes, no thread hop each.
                with open(temp, "wb") as handle:  # noqa: ASYNC230
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        handle.write(chunk)
                os.replace(temp, destination)

    async def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                    form: Callable[[], list[FormPart]] | None = None, params: dict[str, str] | None = None,
                    timeout: aiohttp.ClientTimeout | None = None) -> Any:
        async for attempt in self._policy.copy():
            with attempt:
                return await self._once(method, self.url(path), body, form, params, timeout or self._timeout)
        raise AssertionError("unreachable: tenacity reraises")

    async def _once(self, method: str, url: str, body: dict[str, Any] | None,
                    form: Callable[[], list[FormPart]] | None, params: dict[str, str] | None,
                    timeout: aiohttp.ClientTimeout) -> Any:
        """One attempt -> the decoded JSON answer, or a typed error."""
        data = build_form(form()) if form is not None else None
        with typed_http_errors(f"no answer within {timeout.total or timeout.sock_read} s"):
            # Redirects are refused, as online: aiohttp would carry the api-key header to any host.
            async with self.session.request(method, url, json=body, data=data, params=params, proxy=proxy_for(url),
                                            headers=await self._headers(), timeout=timeout,
                                            allow_redirects=False) as resp:
                await raise_for_status(resp, url)
                raw = await read_capped(resp, ANSWER_CAP)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponseError(f"{method} {url.split('?')[0]}: the answer is not JSON",
                                       status=resp.status) from None

    async def _headers(self) -> dict[str, str]:
        return {**await self.auth.headers(), "User-Agent": USER_AGENT}
