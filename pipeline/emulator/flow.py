"""One API request's way through the emulator: the service's checks, in its order.

auth -> api-version -> body -> deployment -> validation -> flex capacity -> quota
(charged at arrival) -> content filter -> injected fault -> latency -> compute -> answer.
Each check either passes or raises a `Rejection` that becomes the answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from pipeline.emulator import bodies
from pipeline.emulator.auth import auth_failure
from pipeline.emulator.compute import compute
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.exchange import AZURE, Exchange, Operation, Rejection
from pipeline.emulator.fault_answers import BROKEN_JSON, drop, fault_rejection, send_truncated
from pipeline.emulator.faults import Fault, RandomRates
from pipeline.emulator.gateway import refusal_body, refusal_headers
from pipeline.emulator.headers import EXCHANGE, STARTED, limits_of, retry_headers
from pipeline.emulator.ops import OPERATIONS
from pipeline.emulator.quotas import Decision
from pipeline.emulator.state import EmulatorState
from pipeline.emulator.uploads import read_form

CONFIG = web.AppKey("emulator.config", EmulatorConfig)
STATE = web.AppKey("emulator.state", EmulatorState)

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_handler(flavor: str) -> Handler:
    """The aiohttp handler for one route flavour (Azure classic, Azure v1, OpenAI)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        request[STARTED] = time.monotonic()
        config, state = request.app[CONFIG], request.app[STATE]
        op = _operation(request, flavor)
        state.stats.started(op.path if op else "unknown", flavor)
        if op is None:
            state.stats.finished("404", None)
            body = bodies.resource_not_found(flavor != "openai", request.method, request.path)
            ids = {"x-request-id": str(uuid.uuid4()), "apim-request-id": str(uuid.uuid4())}
            return web.json_response(body, status=404, headers=ids)
        x = Exchange(request, config, state, flavor, op)
        request[EXCHANGE] = x
        outcome = "cancelled"  # unless an answer is produced: the client went away
        try:
            response = await _answer(x)
            outcome = x.outcome or str(response.status)
            return response
        finally:
            state.stats.finished(outcome, x.deployment)

    return handle


def _operation(request: web.Request, flavor: str) -> Operation | None:
    """The operation a route names; on Azure's routes with an api-version, only where the service has it:
    a classic operation under /deployments/{deployment}/, another (Responses) without that segment."""
    op = OPERATIONS.get(request.match_info["op"])
    if op is not None and flavor == AZURE and op.classic != ("deployment" in request.match_info):
        return None
    return op


async def _answer(x: Exchange) -> web.StreamResponse:
    try:
        _check_auth(x)
        _check_api_version(x)
        await _read_body(x)
        _resolve_deployment(x)
        x.op.validate(x)
        _check_flex_capacity(x)
        await _admit(x)
        check_content_filter(x)
        return await _respond(x, pick_fault(x))
    except Rejection as rejection:
        return web.json_response(rejection.body, status=rejection.status, headers=rejection.headers)


def _check_auth(x: Exchange) -> None:
    reason = auth_failure(x.request.headers, x.config, x.azure)
    if reason is not None:
        raise Rejection(401, bodies.unauthorized(x.azure, reason))


def _check_api_version(x: Exchange) -> None:
    if x.flavor != AZURE:
        x.api_version = "v1" if x.azure else ""
        return
    version = x.request.query.get("api-version", "")
    if not API_VERSION.match(version):
        raise Rejection(404, bodies.resource_not_found(True, x.request.method, x.request.path))
    since = x.op.azure_since
    if since is not None and version[:10] < since[:10]:
        raise Rejection(400, bodies.operation_too_new(x.op.azure_name, since))
    x.api_version = version


async def _read_body(x: Exchange) -> None:
    if x.op.multipart:
        form = await read_form(x.request, x.config.max_audio_bytes, on_file=x.state.stats.uploaded)
        x.body, x.upload, x.upload_name = form.fields, form.file, form.filename
        return
    try:
        body = json.loads(await x.request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise Rejection(400, bodies.openai_error(_BAD_JSON))
    x.body = body


def _resolve_deployment(x: Exchange) -> None:
    if x.flavor == AZURE and x.op.classic:
        x.deployment = x.request.match_info["deployment"]
    else:
        model = x.body.get("model") or ("dall-e-2" if x.op.path == "images/generations" else None)
        if not isinstance(model, str):
            raise Rejection(400, bodies.openai_error("you must provide a model parameter"))
        x.deployment = model
    if x.config.deployments is not None and x.deployment not in x.config.deployments:
        raise Rejection(404, bodies.deployment_not_found(x.azure, x.deployment))


def _check_flex_capacity(x: Exchange) -> None:
    """A flex request (service_tier "flex") finds no capacity at `flex_unavailable_rate` (or a `flexbusy`
    marker): flex's 429, before any quota is charged and without x-ratelimit headers, as it is no quota signal."""
    if not x.op.tiers or x.body.get("service_tier") != "flex":
        return
    if x.state.faults.flex_unavailable(x.op.texts(x), x.config.flex_unavailable_rate):
        x.rate_headers = False
        x.state.stats.flex_unavailable += 1
        raise Rejection(429, bodies.flex_unavailable())


async def _admit(x: Exchange) -> None:
    """Charge the quota at arrival, as Azure does; refuse with its 429 when the window is full, or
    (over_limit "hold", a LiteLLM proxy's default) keep the request until its window has room."""
    tokens = round(x.op.charge(x.body) * x.config.token_count_factor)
    while True:
        decision = x.state.quotas.admit(x.deployment, x.state.clock(), tokens, limits_of(x))
        x.decision = decision
        if decision.admitted:
            x.state.stats.admitted(x.deployment, tokens)
            return
        if x.config.over_limit != "hold":
            break
        await asyncio.sleep(decision.retry_after_s + 0.001)
    x.state.stats.throttled += 1
    raise _rate_limited(x, decision)


def _rate_limited(x: Exchange, decision: Decision) -> Rejection:
    """The 429 for a full window: Azure's (or OpenAI's), or the gateway's own."""
    gateway = refusal_headers(x.config, decision.retry_after_s)
    if gateway is not None:
        return Rejection(429, refusal_body(decision), gateway)
    reason = decision.reason or "requests"
    limit = decision.limit_tokens if reason == "tokens" else decision.limit_requests
    headers = retry_headers(decision.retry_after_s)
    seconds = int(headers["retry-after"])
    body = bodies.rate_limited(x.azure, x.op.azure_name, x.api_version, seconds, reason, x.model, limit)
    return Rejection(429, body, headers)


def check_content_filter(x: Exchange) -> None:
    """Refuse a request whose text holds the content-filter word, as Azure's prompt filter does (batch lines too)."""
    word = x.config.content_filter_word
    if not x.op.filter_style or not word or not any(word in text for text in x.op.texts(x)):
        return
    if x.op.filter_style == "image":
        raise Rejection(400, bodies.image_prompt_filtered(x.azure))
    raise Rejection(400, bodies.prompt_filtered(x.azure))


def pick_fault(x: Exchange) -> Fault | None:
    """The fault this request meets: a [[fault:...]] marker in its text, else one drawn at the configured rates."""
    config = x.config
    fault = x.state.faults.from_markers(x.op.texts(x)) or x.state.faults.at_random(
        RandomRates(config.error_rate, config.drop_rate, config.hang_rate, config.truncate_rate, config.burst429_rate)
    )
    if fault is not None:
        x.state.stats.faults[fault.kind] += 1
    return fault


async def _respond(x: Exchange, fault: Fault | None) -> web.StreamResponse:
    kind = fault.kind if fault else None
    if fault is not None and fault.status is not None:
        raise fault_rejection(x, fault, fault.status)
    if kind == "drop":
        return drop(x)
    if kind == "hang":
        await asyncio.sleep(x.config.hang_s)
    if kind == "invalidjson":
        return web.Response(body=BROKEN_JSON, content_type="application/json")
    if x.config.latency_ms > 0:
        await asyncio.sleep(x.config.latency_ms / 1000)
    if x.op.tiers and x.body.get("service_tier") == "flex" and x.config.flex_latency_ms > 0:
        await asyncio.sleep(x.config.flex_latency_ms / 1000)  # flex is served when capacity allows: later
    await compute(x)
    x.truncate = kind == "truncate"
    response = await x.op.respond(x)
    if x.truncate and isinstance(response, web.Response):
        return await send_truncated(x, response)
    return response
