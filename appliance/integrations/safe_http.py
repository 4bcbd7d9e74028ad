"""An httpx client that reaches only the addresses :mod:`appliance.integrations.ssrf` allows.

The check sits where the socket is opened, not where the URL is read: the client's connection
pool is given a network backend (:class:`VettingBackend`, in :mod:`appliance.integrations.vetting`
with httpcore, both loaded by the first client) that resolves the host once, judges
every address it resolves to (one refused address refuses the host: a name that resolves to a
public and a private address is not to be trusted), and connects to one of those judged
addresses. The URL, the ``Host`` header, TLS SNI and certificate checks keep the host name. So
a second DNS answer (DNS rebinding) is never asked for, every redirect hop is judged again
because it opens its own connection, and no proxy from the environment is used
(``trust_env=False``): a proxy would make the connection for us.

:func:`fetch` sends one request with a total deadline, follows at most ``max_redirects``
redirects (never from https to http; headers the flow author set are dropped when the origin
changes) and reads at most ``max_bytes`` of the decoded body (gzip and deflate are decoded
incrementally, so a compressed bomb is stopped at the cap too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from appliance import __version__
from appliance.integrations.ssrf import IPAddress

__all__ = [
    "BlockedAddress",
    "UnresolvableHost",
    "ResponseTooLarge",
    "BadRedirect",
    "UnsupportedEncoding",
    "Resolver",
    "system_resolver",
    "safe_client",
    "fetch",
    "Fetched",
    "MAX_RESPONSE_BYTES",
]


def __getattr__(name: str) -> Any:
    # ``VettingBackend`` lives beside httpcore in appliance.integrations.vetting, imported on first use.
    if name == "VettingBackend":
        from appliance.integrations.vetting import VettingBackend

        return VettingBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

MAX_RESPONSE_BYTES = 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
# Headers a flow author may not set: they belong to the connection or to the body framing.
_FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade",
    "trailer", "expect", "accept-encoding", "proxy-authorization", "proxy-connection",
})
_SAFE_ACROSS_ORIGINS = frozenset({"accept", "content-type", "user-agent", "accept-language"})


class BlockedAddress(Exception):
    """The host is, or resolves to, an address the policy refuses; ``reason`` says which kind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableHost(Exception):
    """The host name has no address."""


class ResponseTooLarge(Exception):
    pass


class BadRedirect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedEncoding(Exception):
    pass


Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost() from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def safe_client(
    *, allow_private: bool, timeout: float, resolver: Resolver = system_resolver, max_connections: int = 20
) -> httpx.AsyncClient:
    """A client for requests to addresses chosen by users (close it after use)."""
    from appliance.integrations.vetting import VettingBackend, _VettingTransport

    backend = VettingBackend(allow_private=allow_private, resolver=resolver)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2)
    return httpx.AsyncClient(
        transport=_VettingTransport(backend, limits),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": f"aat-appliance/{__version__}", "Accept-Encoding": "gzip, deflate"},
    )


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: httpx.Headers
    body: bytes


def clean_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """The author's headers without the ones that belong to the connection."""
    return {k: v for k, v in headers.items() if k.lower() not in _FORBIDDEN_HEADERS}


def _next_hop(response: httpx.Response, method: str, content: bytes | None,
              headers: dict[str, Any]) -> tuple[httpx.URL, str, bytes | None, dict[str, Any]]:
    try:
        target = response.url.join(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise BadRedirect("bad_redirect") from exc
    if target.scheme not in ("http", "https"):
        raise BadRedirect("bad_redirect")
    if response.url.scheme == "https" and target.scheme == "http":
        raise BadRedirect("insecure_redirect")
    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
        method, content = ("HEAD" if method == "HEAD" else "GET"), None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if (target.scheme, target.host, target.port) != (response.url.scheme, response.url.host, response.url.port):
        headers = {k: v for k, v in headers.items() if k.lower() in _SAFE_ACROSS_ORIGINS}
    return target, method, content, headers


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    headers: dict[str, Any] | None = None,
    content: bytes | None = None,
    deadline: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
    max_redirects: int = 3,
    read_body: bool = True,
) -> Fetched:
    """Send the request; see the module docstring. Raises the exceptions above, ``TimeoutError``
    when ``deadline`` seconds pass, and httpx's own for what the network does."""
    headers = clean_headers(headers or {})
    async with asyncio.timeout(deadline):
        for _ in range(max_redirects + 1):
            request = client.build_request(method, url, headers=headers, content=content)
            response = await client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers and max_redirects:
                    url, method, content, headers = _next_hop(response, method, content, headers)
                    continue
                body = await read_capped(response, max_bytes) if read_body else b""
                return Fetched(response.status_code, response.headers, body)
            finally:
                await response.aclose()
    raise BadRedirect("too_many_redirects")


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, refusing (``ResponseTooLarge``) anything over ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge()
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        decoder: Any = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, detected
    elif encoding in ("identity", ""):
        decoder = None
    else:
        raise UnsupportedEncoding(encoding)
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        # Ask the decoder for one byte more than is left: getting it means "over the limit".
        data = decoder.decompress(raw, limit - size + 1) if decoder is not None else raw
        size += len(data)
        if size > limit:
            raise ResponseTooLarge()
        chunks.append(data)
    if decoder is not None:
        tail = decoder.flush()
        size += len(tail)
        if size > limit:
            raise ResponseTooLarge()
        chunks.append(tail)
    return b"".join(chunks)
