"""Where requests go, per route family and op: the Responses API on Azure's v1 routes whatever api_style says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.client.deployment import Deployment
from pipeline.client.urls import batch_endpoint, request_url, routes_for
from pipeline.endpoints.base import Request
from pipeline.spec import ServiceSpec

AZURE = ServiceSpec(provider="azure", deployment="gpt-4.1-mini", api_version="2024-10-21")
AZURE_V1 = ServiceSpec(provider="azure", deployment="gpt-4.1-mini", api_style="v1")
EMULATOR = ServiceSpec(provider="emulator", deployment="gpt-4.1-mini", api_version="2024-10-21")
OPENAI = ServiceSpec(provider="openai", model="gpt-4.1-mini")
RESOURCE = "https://r.openai.azure.com"


@pytest.mark.parametrize(("service", "base", "op", "url"), [
    (AZURE, RESOURCE, "chat/completions",
     f"{RESOURCE}/openai/deployments/gpt-4.1-mini/chat/completions?api-version=2024-10-21"),
    (AZURE, RESOURCE, "responses", f"{RESOURCE}/openai/v1/responses"),  # classic Azure has no responses route
    (AZURE, f"{RESOURCE}/openai/", "responses", f"{RESOURCE}/openai/v1/responses"),
    (AZURE_V1, RESOURCE, "responses", f"{RESOURCE}/openai/v1/responses"),
    (EMULATOR, "http://127.0.0.1:9", "responses", "http://127.0.0.1:9/openai/v1/responses"),
    (OPENAI, "https://api.openai.com/v1", "responses", "https://api.openai.com/v1/responses"),
])
def test_request_urls(service: ServiceSpec, base: str, op: str, url: str) -> None:
    assert request_url(service, base, op) == url


@pytest.mark.parametrize(("service", "endpoint"), [(AZURE, "/v1/responses"), (AZURE_V1, "/v1/responses"),
                                                   (OPENAI, "/v1/responses")])
def test_responses_batch_lines_go_to_v1(service: ServiceSpec, endpoint: str) -> None:
    assert batch_endpoint(service, "responses") == endpoint
    assert batch_endpoint(service, "chat/completions") == ("/chat/completions" if service is AZURE else
                                                           "/v1/chat/completions")


def test_routes_for_leaves_other_ops_and_services_alone() -> None:
    assert routes_for(AZURE, "chat/completions") is AZURE
    assert routes_for(OPENAI, "responses") is OPENAI
    assert routes_for(AZURE, "responses").api_style == "v1"


def body_sent(service: ServiceSpec, op: str) -> dict[str, Any]:
    deployment = Deployment("d", service, RESOURCE, None, None)  # type: ignore[arg-type]  # encode uses neither
    raw, form = deployment.encode(Request(op, [], json={"input": "hi"}))
    assert raw is not None and form is None
    return json.loads(raw)


@pytest.mark.parametrize("service", [AZURE, AZURE_V1, EMULATOR])
def test_the_deployment_goes_in_the_body_of_responses_requests(service: ServiceSpec) -> None:
    assert body_sent(service, "responses") == {"input": "hi", "model": "gpt-4.1-mini"}


def test_classic_chat_bodies_still_carry_no_model() -> None:
    assert body_sent(AZURE, "chat/completions") == {"input": "hi"}
    assert body_sent(OPENAI, "chat/completions") == {"input": "hi", "model": "gpt-4.1-mini"}
