"""Who may call: Azure's api-key header or a Bearer token (pure: headers in, verdict out)."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.emulator.config import EmulatorConfig


def auth_failure(headers: Mapping[str, str], config: EmulatorConfig, azure: bool = True) -> str | None:
    """Why a request is refused ("missing", "key", "token"), or None if it may proceed.

    Without `api_key` any non-empty key or token passes; with it, the key must
    match. On Azure routes a `token_verifier` alone decides on Bearer tokens
    (Entra ID tests); on OpenAI routes the Bearer token is the API key.
    """
    key = headers.get("api-key")
    authorization = headers.get("Authorization")
    if key is None and authorization is None:
        return "missing"
    if key is not None:
        if key and (config.api_key is None or key == config.api_key):
            return None
        if authorization is None:
            return "key"
    return _bearer_failure(authorization or "", config, azure)


def _bearer_failure(authorization: str, config: EmulatorConfig, azure: bool) -> str | None:
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return "token"
    if azure and config.token_verifier is not None:
        return None if config.token_verifier(token) else "token"
    if config.api_key is None or token == config.api_key:
        return None
    return "key"
