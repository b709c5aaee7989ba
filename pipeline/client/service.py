"""The client's top layer: call -> retrying -> limited -> send_once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from tenacity import RetryCallState

from pipeline.client.deployment import Deployment, DeploymentDropped, Router
from pipeline.client.health import ServiceHealth
from pipeline.client.limiter import Rerouted
from pipeline.client.retry import retry_cause, retry_policy
from pipeline.client.transport import DEFAULT_ANSWER_CAP, fetch_bytes, send_once
from pipeline.endpoints.base import HttpResponse, Request
from pipeline.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InsufficientQuotaError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ResourceUnavailableError,
)
from pipeline.events import EventSink, Retried, Throttled, ignore
from pipeline.redact import get_logger
from pipeline.spec import JobSpec
from pipeline.version import __version__

log = get_logger("pipeline.http")
USER_AGENT = f"aoai-pipeline/{__version__} (+aiohttp)"


def _int_header(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ServiceClient:
    """Sends requests: paced per deployment, retried, parsed inside the retry loop."""

    def __init__(self, spec: JobSpec, router: Router, session: aiohttp.ClientSession,
                 on_event: EventSink = ignore, log_bodies: bool = False) -> None:
        self.spec = spec
        self.router = router
        self.session = session
        self._on_event = on_event
        self._log = RequestLog(log_bodies)
        self._timeout = aiohttp.ClientTimeout(total=spec.limits.timeout_s)
        self.health = ServiceHealth(spec.limits.max_outage_s, spec.limits.max_retry_wait_s)
        self._policy = retry_policy(spec.limits.max_attempts, spec.limits.max_retry_wait_s, self._before_retry,
                                    schema_attempts=spec.limits.schema_attempts)

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._on_event(Retried(cause=retry_cause(error), attempt=state.attempt_number))
        log.info("retrying after attempt %d: %s", state.attempt_number, error)

    async def call(self, request: Request,
                   parse: Callable[[Request, HttpResponse], Any]) -> tuple[Any, HttpResponse, int]:
        """Send until success or a permanent error; returns (parsed, response, attempts).

        Errors re-raised carry their `attempts`. Parsing is inside the loop: a truncated or invalid
        body is retried like a connection error. Each attempt may go to another deployment.
        """
        attempts = 0
        try:
            async for attempt in self._policy.copy():
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = await self._attempt(request, attempts)
                    parsed = parse(request, response)
            return parsed, response, attempts
        except APIError as error:
            error.attempts = attempts
            raise

    async def download(self, url: str) -> bytes:
        """GET a file the service pointed to (an image URL), with the same retries and timeout."""
        async for attempt in self._policy.copy():
            with attempt:
                return await fetch_bytes(self.session, url, self._timeout,
                                         self.spec.limits.max_answer_bytes or DEFAULT_ANSWER_CAP)
        raise AssertionError("unreachable: tenacity reraises")

    async def _attempt(self, request: Request, attempt: int) -> HttpResponse:
        """One attempt, at the deployment that can take it soonest; its outcome tells `health` whether
        the service is there at all (which may stop the run: JobAborted)."""
        while True:
            deployment = self.router.choose(request.tokens)
            try:
                response = await self._attempt_at(deployment, request, attempt)
            except Rerouted:
                continue  # it waited for a deployment a 429 held up: the Router picks again
            except APIError as error:
                self.health.on_error(error, deployment.url(request.op))
                raise
            self.health.on_answer()
            return response

    async def _attempt_at(self, deployment: Deployment, request: Request, attempt: int) -> HttpResponse:
        deployment.in_flight += 1
        try:
            # A slot of the server's capacity, adapted to its latency; held past a timeout (client/concurrency.py).
            async with deployment.capacity(self.spec.limits).slot(len(request.items)) as slot:
                response = await self._limited(deployment, request, attempt)
                slot.answered(response.latency_s)
        except (AuthenticationError, PermissionDeniedError, NotFoundError) as error:
            refused = not isinstance(error, NotFoundError) or deployment.succeeded == 0
            if refused and self.router.several and not deployment.active:
                raise DeploymentDropped(f"deployment {deployment.name} was dropped") from None  # an answer in flight
            if refused and self.router.can_drop(deployment):
                self.router.drop(deployment, str(error))
            raise
        except (InternalServerError, APIConnectionError):
            deployment.on_server_trouble()
            raise
        finally:
            deployment.in_flight -= 1
        deployment.on_success()
        response.deployment = deployment.name
        return response

    async def _limited(self, deployment: Deployment, request: Request, attempt: int) -> HttpResponse:
        body, form = deployment.encode(request)
        url = deployment.url(request.op)
        give_up = (lambda: self.router.better_elsewhere(deployment)) if self.router.several else None
        slot = await deployment.pacer.acquire_slot(request.tokens, give_up)
        headers = {**await deployment.auth.headers(), "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await send_once(self.session, url, headers, request, body, self._timeout, form,
                                       deployment.proxy, self.spec.limits.max_answer_bytes)
        except (InsufficientQuotaError, RequestTooLargeError, ResourceUnavailableError) as error:
            self._log.outcome(url, attempt, error=error, body=body)  # 429s that say nothing about the pacing window
            raise
        except RateLimitError as error:
            # A later attempt's refusal is the weaker evidence about the quota (the pacer decides what holds).
            deployment.pacer.on_rate_limited(error.retry_after, slot=slot, repeat=attempt > 1)
            self._on_event(Throttled(retry_after=error.retry_after))
            self._log.outcome(url, attempt, error=error, body=body)
            raise
        except APIError as error:
            if error.status is not None:
                deployment.pacer.note_admitted(request.tokens)
            self._log.outcome(url, attempt, error=error, body=body)
            raise
        told = response.headers
        deployment.pacer.on_success(request.tokens, _int_header(told, "x-ratelimit-remaining-requests"),
                                    _int_header(told, "x-ratelimit-remaining-tokens"),
                                    _int_header(told, "x-ratelimit-limit-requests"),
                                    _int_header(told, "x-ratelimit-limit-tokens"), slot=slot)
        self._log.outcome(url, attempt, response=response, body=body)
        return response


LOGGED_HEADERS = ("x-request-id", "apim-request-id", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
                  "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "retry-after", "retry-after-ms",
                  "x-ms-region", "openai-processing-ms", "content-type")
class RequestLog:
    """At debug level, one line per request; with `bodies` (`pipeline --log-bodies`), its bodies too."""

    def __init__(self, bodies: bool = False) -> None:
        self.bodies = bodies

    def outcome(self, url: str, attempt: int, response: HttpResponse | None = None, error: APIError | None = None,
                body: bytes | None = None) -> None:
        """Method, URL, status, latency, attempt and allowlisted headers (the bodies when asked for)."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        if response is not None:
            shown = {k: v for k, v in response.headers.items() if k in LOGGED_HEADERS}
            log.debug("POST %s -> %d in %.1f ms (attempt %d) %s", url, response.status, response.latency_s * 1000,
                      attempt, shown)
        else:
            log.debug("POST %s -> %s (attempt %d, request id %s)", url, error, attempt,
                      error.request_id if error else None)
        if self.bodies:
            log.debug("request body: %s", (body or b"<multipart>")[:4000].decode("utf-8", "replace"))
            if response is not None:
                log.debug("response body: %s", response.body[:4000].decode("utf-8", "replace"))
