"""Request headers for each auth mode. Keys come from the environment only; tokens are shared and cached."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Protocol

from pipeline.errors import JobAborted, SpecError
from pipeline.redact import redact, register_secret
from pipeline.spec import ServiceSpec

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
EMULATOR_PLACEHOLDER_KEY = "emulator-key"


class Auth(Protocol):
    async def headers(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


class StaticAuth:
    """A fixed header: api-key (Azure), Bearer (OpenAI), or nothing."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    async def headers(self) -> dict[str, str]:
        return self._headers

    async def close(self) -> None:
        return None


class TokenCredential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class BearerTokenAuth:
    """One Entra token shared by every worker, refreshed shortly before it expires."""

    def __init__(self, credential: TokenCredential, scope: str = ENTRA_SCOPE, clock: Any = time.time) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        if self._token is None or self._clock() >= self._refresh_at:
            async with self._lock:
                if self._token is None or self._clock() >= self._refresh_at:
                    await self._refresh()
        return {"Authorization": f"Bearer {self._token}"}

    async def _refresh(self) -> None:
        now = self._clock()
        try:
            access = await self._credential.get_token(self._scope)
        except Exception as exc:  # azure-identity raises several unrelated types
            raise JobAborted(f"Entra ID: could not get a token for {self._scope}: "
                             f"{redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        register_secret(access.token)
        lifetime = max(0.0, float(access.expires_on) - now)
        # Refresh with a margin: 5 minutes for real tokens, a quarter of the life for short ones.
        self._token = access.token
        self._refresh_at = now + lifetime - min(300.0, lifetime * 0.25)

    async def close(self) -> None:
        close = getattr(self._credential, "close", None)
        if close is not None:
            await close()


def api_key_from_env(service: ServiceSpec, env: dict[str, str] | None = None) -> str | None:
    env = dict(os.environ) if env is None else env
    if service.api_key_env:
        return env.get(service.api_key_env)
    name = "OPENAI_API_KEY" if service.provider == "openai" else "AZURE_OPENAI_API_KEY"
    return env.get(name)


def make_auth(service: ServiceSpec, credential: TokenCredential | None = None,
              env: dict[str, str] | None = None) -> Auth:
    """Build the auth for a service; a missing key is a SpecError before any request."""
    if service.auth == "entra":
        return BearerTokenAuth(credential or _default_credential(service))
    if service.auth == "none":
        return StaticAuth({"api-key": EMULATOR_PLACEHOLDER_KEY} if service.provider == "emulator" else {})
    key = api_key_from_env(service, env)
    if not key:
        if service.provider == "emulator" and not service.api_key_env:
            key = EMULATOR_PLACEHOLDER_KEY
        else:
            variable = service.api_key_env or ("OPENAI_API_KEY" if service.provider == "openai"
                                               else "AZURE_OPENAI_API_KEY")
            raise SpecError(f"[service] auth = \"api-key\": environment variable {variable} is not set; "
                            "export it (or use auth = \"entra\")")
    register_secret(key)
    if service.provider == "openai":
        return StaticAuth({"Authorization": f"Bearer {key}"})
    return StaticAuth({"api-key": key})


def _default_credential(service: ServiceSpec) -> TokenCredential:
    from azure.identity.aio import DefaultAzureCredential

    options: dict[str, Any] = {}
    if service.managed_identity_client_id:
        options["managed_identity_client_id"] = service.managed_identity_client_id
    if service.tenant_id:
        options["additionally_allowed_tenants"] = [service.tenant_id]
        options["interactive_browser_tenant_id"] = service.tenant_id
    return DefaultAzureCredential(**options)
