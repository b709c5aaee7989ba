"""The router of a run: one Deployment (URL, auth, pacer) per [[service.deployments]] entry, or for [service]."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pipeline.client.auth import TokenCredential, make_auth
from pipeline.client.deployment import Deployment, Router
from pipeline.client.limiter import Pacer, Pacing
from pipeline.crashpoints import CrashPoint, crash_point
from pipeline.endpoints.base import Endpoint
from pipeline.spec import DeploymentSpec, JobSpec
from pipeline.wiring.emulator import needs_local_emulator


def build_router(spec: JobSpec, endpoint: Endpoint, local_url: str | None,
                 credential: TokenCredential | None, shared: Mapping[str, Pacing] | None = None) -> Router:
    """One Deployment (URL, auth, pacer) per [[service.deployments]] entry, or for [service]. `shared`: the
    pacers of a run spread over workers, by deployment name (one quota for all of them: cluster/quota.py)."""
    deployments = []
    for entry in spec.deployments():
        service = entry.service
        base_url = local_url if needs_local_emulator(service) else service.base_url
        pacer = shared[entry.name] if shared is not None else own_pacer(spec, endpoint, entry)
        deployments.append(Deployment(entry.name, service, base_url or "", make_auth(service, credential), pacer))
    return Router(deployments)


def own_pacer(spec: JobSpec, endpoint: Endpoint, entry: DeploymentSpec) -> Pacer:
    """The pacer of one deployment, for this process alone."""
    tpm = entry.tokens_per_minute if endpoint.counts_tokens else None
    return Pacer(entry.requests_per_minute, tpm, max_hold_s=spec.limits.max_retry_wait_s,
                 on_hold=functools.partial(crash_point, CrashPoint.LIMITER_HOLD))  # test hook: held by a 429
