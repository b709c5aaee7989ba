"""One place requests can go (URL, auth, pacer), and the choice between several.

With several deployments, each keeps its own buckets and adaptive rate. Every attempt goes
to the one that can take it soonest; one answering 429 or 5xx cools down and its share moves
to the others; one refusing auth is dropped with a warning while the rest carry on. "Soonest"
counts requests: a deployment paced by tokens only is turned into requests/s with the size of
a typical request, which the Router learns from the requests it routes. An attempt waiting in
the pacer of a deployment that a 429 has held or slowed goes back to the Router for another.

Each deployment also learns what its server can compute (client/concurrency.py): how many requests
it takes at once and how many inputs in one. A batch is cut to the smallest cap of the active
deployments, so that whichever takes it can answer it within the timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from pipeline.client.auth import Auth
from pipeline.client.concurrency import Capacity
from pipeline.client.limiter import Pacing
from pipeline.client.transport import proxy_for
from pipeline.client.urls import model_in_body, request_url
from pipeline.endpoints.base import FormPart, Request
from pipeline.errors import APIConnectionError, JobAborted
from pipeline.redact import get_logger
from pipeline.spec import LimitsSpec, ServiceSpec

log = get_logger("pipeline")
UNPACED_RATE = 1e6  # requests/s assumed for a deployment without a request or token limit
MAX_COOL_DOWN_S = 10.0
SIZE_WEIGHT = 0.05  # weight of the newest request in the running mean of request sizes


class RequestSizes:
    """A running mean of requests' token estimates, shared by the deployments of one Router."""

    def __init__(self) -> None:
        self.typical: float | None = None

    def note(self, tokens: int) -> None:
        if tokens > 0:
            self.typical = tokens if self.typical is None else self.typical + SIZE_WEIGHT * (tokens - self.typical)


class DeploymentDropped(APIConnectionError):
    """This deployment refused us for good; the attempt goes elsewhere (so it is retryable)."""


class Deployment:
    def __init__(self, name: str, service: ServiceSpec, base_url: str, auth: Auth, pacer: Pacing,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.service = service
        self.base_url = base_url
        self.auth = auth
        self.pacer = pacer
        self.active = True
        self.in_flight = 0
        self.succeeded = 0
        self._failures_in_row = 0
        self._cool_until = 0.0
        self._clock = clock
        self.proxy = proxy_for(base_url) if base_url else None
        self._capacity: Capacity | None = None

    def capacity(self, limits: LimitsSpec) -> Capacity:
        """This deployment's concurrency limit and batch cap, made on first use with the job's limits
        as their ceilings (the spec's concurrency and batch_size) and its timeout as their yardstick."""
        if self._capacity is None:
            self._capacity = Capacity(limits.concurrency, limits.batch_size, limits.timeout_s, self._clock)
        return self._capacity

    def url(self, op: str) -> str:
        return request_url(self.service, self.base_url, op)

    def encode(self, request: Request) -> tuple[bytes | None, Callable[[], list[FormPart]] | None]:
        """The body for this deployment: classic Azure routes carry no `model`, the others do."""
        model = self.service.model_name
        with_model = model_in_body(self.service, request.op)  # per op: some are on v1 routes whatever the style
        if request.json is None:
            build = request.form
            if build is None or not with_model:
                return None, build
            return None, lambda: [FormPart("model", model), *build()]
        payload = {**request.json, "model": model} if with_model else request.json
        return json.dumps(payload, ensure_ascii=False).encode(), None

    def request_rate(self, typical_tokens: float | None = None) -> float:
        """Requests/s this deployment is paced to: the slower of its request and token limits.

        Without the token limit, deployments limited by tokens alone would all look unpaced and
        get the same number of requests in flight: a small one would hold workers queued in its
        pacer while a large one waited for work.
        """
        rates = [self.pacer.request_rate() or UNPACED_RATE]
        token_rate = self.pacer.token_rate()
        if token_rate and typical_tokens:
            rates.append(token_rate / typical_tokens)
        return min(rates)

    def wait_estimate(self, typical_tokens: float | None = None) -> float:
        """Seconds until this deployment could take one more request: the basis of the choice."""
        rate = self.request_rate(typical_tokens)
        held = max(self.pacer.hold_remaining(), self._cool_until - self._clock(), 0.0)
        return held + (self.in_flight + 1) / rate

    def state(self) -> str:
        """The pacer's few words, and the server's capacity when it holds requests back."""
        capacity = self._capacity
        if capacity is None or not capacity.limiting():
            return self.pacer.state()
        return f"{self.pacer.state()}; {capacity.state()}"

    def on_success(self) -> None:
        self.succeeded += 1
        self._failures_in_row = 0

    def on_server_trouble(self) -> None:
        """5xx or a broken connection: cool down, longer each time in a row."""
        self._failures_in_row += 1
        self._cool_until = self._clock() + min(MAX_COOL_DOWN_S, 0.25 * 2 ** self._failures_in_row)


class Router:
    """Picks a deployment per attempt."""

    def __init__(self, deployments: list[Deployment]) -> None:
        self.deployments = deployments
        self.sizes = RequestSizes()

    @property
    def several(self) -> bool:
        return len(self.deployments) > 1

    def choose(self, tokens: int = 0) -> Deployment:
        """The active deployment that can take a request of `tokens` soonest."""
        self.sizes.note(tokens)
        active = [d for d in self.deployments if d.active]
        if not active:
            raise JobAborted("every deployment refused the job (see the warnings above)")
        return min(active, key=lambda d: d.wait_estimate(self.sizes.typical))

    def better_elsewhere(self, deployment: Deployment) -> bool:
        """Another active deployment would take a waiting attempt sooner than this one (held by
        a 429 or slowed since the attempt was routed here)."""
        if not self.several:
            return False
        typical = self.sizes.typical
        mine = deployment.wait_estimate(typical) - 1 / deployment.request_rate(typical)  # counts itself
        return any(d.wait_estimate(typical) < mine for d in self.deployments if d.active and d is not deployment)

    def drop(self, deployment: Deployment, reason: str) -> None:
        """Take a deployment out; raise the caller's error instead when it was the last one."""
        deployment.active = False
        log.warning("deployment %s dropped: %s; the others carry on", deployment.name, reason)
        raise DeploymentDropped(f"deployment {deployment.name} dropped: {reason}")

    def can_drop(self, deployment: Deployment) -> bool:
        return self.several and sum(d.active for d in self.deployments) > 1 and deployment.active

    def batch_cap(self, limits: LimitsSpec) -> int:
        """Inputs one request may carry now: the smallest cap of the active deployments."""
        caps = [d.capacity(limits).batch.size for d in self.deployments if d.active]
        return min(caps, default=limits.batch_size)

    def state(self) -> str:
        if not self.several:
            return self.deployments[0].state()
        parts = [f"{d.name}: {d.state() if d.active else 'dropped'}" for d in self.deployments]
        return "; ".join(parts)
