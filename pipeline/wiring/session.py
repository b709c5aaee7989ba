"""The HTTP session a run's requests go through: the same TLS and headers for both engines."""

from __future__ import annotations

import ssl

import aiohttp

from pipeline.client.service import USER_AGENT
from pipeline.spec import JobSpec

DNS_CACHE_S = 10  # aiohttp's own default


def ssl_context(spec: JobSpec) -> ssl.SSLContext | bool:
    """The default trust store, or the spec's ca_bundle (a gateway with a private CA)."""
    if spec.service.ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=str(spec.service.ca_bundle))


def http_session(spec: JobSpec, limit: int, limit_per_host: int = 0, dns_cache_s: int = DNS_CACHE_S,
                 ) -> aiohttp.ClientSession:
    """A session of at most `limit` connections (`limit_per_host` to one host; 0: no own limit).
    trust_env is off: proxies come from the spec (deployment.proxy), never from the environment."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=dns_cache_s,
                                     ssl=ssl_context(spec))
    return aiohttp.ClientSession(connector=connector, trust_env=False, headers={"User-Agent": USER_AGENT})
