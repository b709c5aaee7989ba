"""Endpoint kinds, one module each, behind the interface in base.py."""

from __future__ import annotations

from pipeline.endpoints.base import Endpoint
from pipeline.endpoints.chat import Chat
from pipeline.endpoints.completions import Completions
from pipeline.endpoints.embeddings import Embeddings
from pipeline.endpoints.images import Images
from pipeline.endpoints.responses import Responses
from pipeline.endpoints.speech import Speech
from pipeline.endpoints.transcription import Transcription, Translation
from pipeline.errors import SpecError
from pipeline.spec import JobSpec

ENDPOINT_CLASSES: dict[str, type[Endpoint]] = {
    "embeddings": Embeddings,
    "chat": Chat,
    "completions": Completions,
    "transcription": Transcription,
    "translation": Translation,
    "images": Images,
    "speech": Speech,
    "responses": Responses,
}


def endpoint_for(spec: JobSpec) -> Endpoint:
    try:
        cls = ENDPOINT_CLASSES[spec.endpoint]
    except KeyError:
        raise SpecError(f"{spec.source_file}: endpoint: {spec.endpoint!r} is not available yet") from None
    return cls(spec)
