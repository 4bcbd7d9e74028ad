"""The connect-time half of :mod:`appliance.integrations.safe_http`: httpcore's network backend
with every TCP connection vetted against the SSRF policy (:class:`VettingBackend`), and the httpx
transport whose pool uses it. :func:`~appliance.integrations.safe_http.safe_client` imports this
module when it first builds a client, so httpcore (and h11, about 25 ms of CPU) is loaded by the
first user-chosen request, not by every restart (BENCHMARKS.md, "Footprint").
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from appliance.integrations.safe_http import (
    BlockedAddress,
    Resolver,
    UnresolvableHost,
    system_resolver,
)
from appliance.integrations.ssrf import IPAddress, parse_ip_literal, refusal

__all__ = ["VettingBackend"]


class VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with every TCP connection vetted (module docstring)."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def vet(self, host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
        literal = parse_ip_literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            with anyio.fail_after(timeout) if timeout else contextlib.nullcontext():
                addresses = await self._resolver(host, port)
        if not addresses:
            raise UnresolvableHost()
        for ip in addresses:
            reason = refusal(ip, allow_private=self._allow_private)
            if reason is not None:
                raise BlockedAddress(reason)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port, timeout)
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, *_: Any, **__: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix_socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every client.
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


class _VettingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: VettingBackend, limits: httpx.Limits) -> None:
        context = _default_ssl_context()
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend; the pool is the only
        # thing handle_async_request uses, so it is replaced by one with the vetting backend
        # (pinned by tests/appliance/test_integrations_ssrf.py, which fail if it is bypassed).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
