"""A lean HTTP/1.1 client for forwarding deliveries to tenants: one POST, its status, nothing else.

Why not the one ``httpx.AsyncClient``: forwarding is the router's hot path (one request per
delivery when tenants answer quickly), and httpx + httpcore cost about half of the router's CPU
per forwarded event there (bench/router.py, BENCHMARKS.md). Forwarding needs very little of
HTTP: POST a body with three headers to an appliance we run, read the status line, skip the
body, keep the connection. Everything else (the Graph API, tenants' admin API) stays on httpx.

Contract of :meth:`Wire.post`:

- returns the status code, or raises :class:`WireError` (``"timeout"``, or the name of the
  failure: refused, reset, malformed answer); ``timeout`` covers connecting, sending and the
  whole answer;
- keeps one small pool of idle keep-alive connections per origin (``scheme, host, port``);
  a connection is reused only after a complete answer without ``Connection: close``;
- a request on a *reused* connection that fails before any byte of the answer is sent once
  more on a new connection (the server may have closed it while idle). Forwarding is at least
  once anyway, and the appliance deduplicates.
- ``https`` URLs use TLS with the default verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Wire", "WireError"]

MAX_HEAD = 64 * 1024


class WireError(Exception):
    """The request did not get an answer; ``str(exc)`` is the short reason recorded."""


@dataclass
class _Origin:
    host: str
    port: int
    tls: bool
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


class _Stale(Exception):
    pass


class Wire:
    def __init__(self, *, user_agent: str, max_idle: int = 4) -> None:
        self.user_agent = user_agent
        self.max_idle = max_idle
        self._origins: dict[str, _Origin] = {}
        self._ssl: ssl.SSLContext | None = None

    def _origin(self, base_url: str) -> _Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise WireError(f"unusable tenant URL scheme {parts.scheme!r}")
            tls = parts.scheme == "https"
            origin = self._origins[base_url] = _Origin(parts.hostname, parts.port or (443 if tls else 80), tls)
        return origin

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        origin = self._origin(base_url)
        head = [f"POST {path} HTTP/1.1", f"Host: {origin.host}:{origin.port}", f"User-Agent: {self.user_agent}",
                f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(timeout):
                while origin.idle:
                    reader, writer = origin.idle.pop()
                    try:
                        return await self._exchange(origin, reader, writer, request, reused=True)
                    except _Stale:
                        continue
                reader, writer = await self._connect(origin)
                return await self._exchange(origin, reader, writer, request, reused=False)
        except TimeoutError:
            raise WireError("timeout") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise WireError(type(exc).__name__) from exc

    async def _connect(self, origin: _Origin) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        return await asyncio.open_connection(origin.host, origin.port, ssl=self._ssl if origin.tls else None,
                                             limit=MAX_HEAD)

    async def _exchange(self, origin: _Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes, *, reused: bool) -> int:
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError) as exc:
                if reused and not (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    raise _Stale from exc
                raise
            status, length, chunked, close = _parse_head(head)
            if chunked:
                await _skip_chunked(reader)
            elif length is not None:
                await reader.readexactly(length)
            else:  # no framing: the body runs until the server closes
                await reader.read()
                close = True
            keep = not close
            return status
        finally:
            if keep and len(origin.idle) < self.max_idle:
                origin.idle.append((reader, writer))
            else:
                writer.close()

    def forget(self, base_url: str) -> None:
        """Close the idle connections to an origin that is going away (a torn-down tenant)."""
        origin = self._origins.pop(base_url, None)
        for _, writer in origin.idle if origin else []:
            writer.close()

    async def aclose(self) -> None:
        for origin in self._origins.values():
            for _, writer in origin.idle:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            origin.idle.clear()


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """``(status, content length or None, chunked, connection close)``; ValueError when malformed."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
        raise ValueError("not an HTTP/1.x status line")
    status = int(rest[:3])
    length, chunked, close = None, False, version == "HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
            if length < 0:
                raise ValueError("negative Content-Length")
        elif name == "transfer-encoding":
            chunked = value.endswith("chunked")
        elif name == "connection":
            close = "close" in value if version != "HTTP/1.0" else "keep-alive" not in value
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    return status, length, chunked, close


async def _skip_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return
        await reader.readexactly(size + 2)
