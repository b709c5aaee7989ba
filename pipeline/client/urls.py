"""Where a request goes: Azure classic and v1 routes, OpenAI and compatible servers."""

from __future__ import annotations

from urllib.parse import quote

from pipeline.spec import ServiceSpec


def request_url(service: ServiceSpec, base_url: str, op: str) -> str:
    base = base_url.rstrip("/")
    if service.provider == "openai":
        return f"{base}/{op}"
    base = base.removesuffix("/openai/v1").removesuffix("/openai")
    if service.api_style == "v1":
        return f"{base}/openai/v1/{op}"
    deployment = quote(service.model_name, safe="")
    return f"{base}/openai/deployments/{deployment}/{op}?api-version={quote(service.api_version or '')}"


def model_in_body(service: ServiceSpec) -> bool:
    """Classic Azure routes name the deployment in the URL; everything else in the body."""
    return service.provider == "openai" or service.api_style == "v1"
