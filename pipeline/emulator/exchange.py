"""One API request on its way through the emulator, and the error that ends it early."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipeline.emulator.bodies import Body, openai_error
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.quotas import Decision
from pipeline.emulator.state import EmulatorState

AZURE = "azure"  # /openai/deployments/{deployment}/{op}?api-version=
AZURE_V1 = "azure-v1"  # /openai/v1/{op}, deployment in body "model"
OPENAI = "openai"  # /v1/{op}, model in body


class Rejection(Exception):
    """An error answer decided before (or instead of) the real one."""

    def __init__(self, status: int, body: Body, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid(message: str, param: str | None = None, code: str | None = None) -> Rejection:
    """A 400 invalid_request_error, as both services spell validation failures."""
    return Rejection(400, openai_error(message, param=param, code=code))


@dataclass(frozen=True)
class Operation:
    """What the emulator knows about one route such as "chat/completions"."""

    path: str
    azure_name: str  # the operation name Azure's 429 messages quote
    respond: Callable[[Exchange], Awaitable[web.StreamResponse]]
    validate: Callable[[Exchange], None]  # raises Rejection
    texts: Callable[[Exchange], list[str]]  # where fault markers and filter words are looked for
    charge: Callable[[dict[str, Any]], int] = lambda body: 0  # tokens charged at arrival
    multipart: bool = False
    filter_style: str | None = None  # "prompt" or "image": how a blocked prompt is answered
    tiers: bool = False  # takes `service_tier` (flex processing: flow.py)
    # Answered under Azure's /openai/deployments/{deployment}/. False (the Responses API): the deployment is in
    # body `model` on every route, Azure's /openai/{op}?api-version= too, and the deployment route is a 404.
    classic: bool = True
    azure_since: str | None = None  # the first api-version of Azure's routes that has the operation (None: all)


@dataclass
class Exchange:
    request: web.Request
    config: EmulatorConfig
    state: EmulatorState
    flavor: str
    op: Operation
    deployment: str = ""
    api_version: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    upload: bytes | None = None  # the `file` part of a multipart request
    upload_name: str | None = None  # its filename, whose extension the service checks
    decision: Decision | None = None
    truncate: bool = False  # a truncate fault: cut the answer mid-body
    rate_headers: bool = True  # x-ratelimit-* on the answer (not on flex's "resource unavailable": no quota signal)
    outcome: str | None = None  # for stats when there is no status: "dropped", "truncated"
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def azure(self) -> bool:
        """Azure routes spell errors and annotations the Azure way."""
        return self.flavor != OPENAI

    @property
    def base_url(self) -> str:
        """The server's own address as the client reached it (for image URLs)."""
        return f"{self.request.scheme}://{self.request.host}"

    @property
    def model(self) -> str:
        """The name echoed in `model` fields: the deployment (Azure) or the model asked for."""
        return self.deployment
