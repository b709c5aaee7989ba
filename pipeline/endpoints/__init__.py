"""Endpoint kinds, one module each, behind the interface in base.py."""

from __future__ import annotations

from pipeline.endpoints.base import Endpoint
from pipeline.endpoints.chat import Chat
from pipeline.endpoints.embeddings import Embeddings
from pipeline.errors import SpecError
from pipeline.spec import JobSpec

ENDPOINT_CLASSES: dict[str, type[Endpoint]] = {
    "embeddings": Embeddings,
    "chat": Chat,
}


def endpoint_for(spec: JobSpec) -> Endpoint:
    try:
        cls = ENDPOINT_CLASSES[spec.endpoint]
    except KeyError:
        raise SpecError(f"{spec.source_file}: endpoint: {spec.endpoint!r} is not available yet") from None
    return cls(spec)
