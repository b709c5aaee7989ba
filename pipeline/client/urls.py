"""Where a request goes: Azure classic and v1 routes, OpenAI and compatible servers.

One place for every route the job uses: online requests, the Files and Batch APIs, and the
relative `url` each batch line carries. The three differ only in whether a deployment segment
and an api-version belong in them, and that is decided once, by `deployment_routes`.

Azure serves some APIs on its v1 routes only (the Responses API has no deployments/{name}/ route): a job
on one goes to the v1 API whatever api_style says, its deployment in the body (`routes_for`).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

from pipeline.spec import ServiceSpec

V1_ONLY_OPS = frozenset({"responses"})


def routes_for(service: ServiceSpec, op: str) -> ServiceSpec:
    """The service as the routes of `op` see it: api_style = "v1" for an op classic Azure routes lack."""
    if op in V1_ONLY_OPS and service.provider != "openai" and service.api_style == "classic":
        return replace(service, api_style="v1")
    return service


def deployment_routes(service: ServiceSpec) -> bool:
    """Azure classic routes (also the emulator's by default): the deployment in the path, api-version in the query."""
    return service.provider != "openai" and service.api_style == "classic"


def model_in_body(service: ServiceSpec, op: str) -> bool:
    """Classic Azure routes name the deployment in the URL; everything else in the body."""
    return not deployment_routes(routes_for(service, op))


def api_root(service: ServiceSpec, base_url: str) -> str:
    """What every route hangs from: OpenAI's base URL as given; for Azure the resource's /openai or /openai/v1
    (a base URL already ending in either is taken as the resource)."""
    base = base_url.rstrip("/")
    if service.provider == "openai":
        return base
    base = base.removesuffix("/openai/v1").removesuffix("/openai")
    return f"{base}/openai/v1" if service.api_style == "v1" else f"{base}/openai"


def api_url(service: ServiceSpec, base_url: str, path: str) -> str:
    """A route without a deployment segment (files, batches): {root}/{path}, with api-version on classic routes."""
    url = f"{api_root(service, base_url)}/{path}"
    if deployment_routes(service):
        return f"{url}?api-version={quote(service.api_version or '')}"
    return url


def request_url(service: ServiceSpec, base_url: str, op: str) -> str:
    """An online request's URL: classic routes go through openai/deployments/{deployment}/."""
    service = routes_for(service, op)
    if deployment_routes(service):
        return api_url(service, base_url, f"deployments/{quote(service.model_name, safe='')}/{op}")
    return api_url(service, base_url, op)


def batch_endpoint(service: ServiceSpec, op: str) -> str:
    """Every batch line's `url` and the batch's `endpoint`: Azure classic takes "/chat/completions", the rest
    "/v1/chat/completions" (the batch names no deployment: each line's body names its model)."""
    return f"/{op}" if deployment_routes(routes_for(service, op)) else f"/v1/{op}"


__all__ = ["V1_ONLY_OPS", "api_root", "api_url", "batch_endpoint", "deployment_routes", "model_in_body",
           "request_url", "routes_for"]
