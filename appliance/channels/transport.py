"""The transport under the appliance's one ``httpx.AsyncClient``: httpx's API, aiohttp's pool.

Why not httpx's default (httpcore 1.0.x) pool: on every request and every response close it
rescans all its connections and probes each idle one's socket, and it closes idle connections
beyond ``max_keepalive_connections`` only to reopen them on the next burst. With the sender's
32–64 sends in flight that cost 4.3–5.0 CPU-ms per Graph request here, against 1.0–1.3 ms
through this transport (BENCHMARKS.md, "Inbound message -> bot reply"); raising
``max_keepalive_connections`` made httpcore slower still (more connections to rescan), and the
httpcore2 fork's pool, or httpcore over a plain asyncio network backend, were still 2.5–4 ms.

Contract of :func:`pooled_transport`:

- an ``httpx.AsyncBaseTransport`` that hands each request to ``httpx_aiohttp.AiohttpTransport``
  (maintained upstream, no HTTP code of ours). Its aiohttp session is created on the first
  request, inside the running loop;
- aiohttp (about 9 MB of RSS and 0.25 CPU-s here) and the TLS context (the CA bundle, 0.05 s)
  are loaded by :func:`preload` in a background thread, which the app's lifespan starts once
  the appliance is ready: a restart does not wait for them, and neither does the first send,
  as long as it comes after they are loaded (0.3–0.5 s after ready). A request that comes
  sooner awaits that same load without blocking the event loop (an import on the first send
  itself, on the loop, made that send wait over 1 s on a loaded machine). Without
  :func:`preload` having run, the first request starts it;
- at most ``limits.max_connections`` connections; every idle connection is kept for
  ``limits.keepalive_expiry`` seconds (aiohttp has no separate keep-alive count, so a burst
  never closes and reopens connections);
- TLS verified with httpx's default context; no cookie jar of aiohttp's own (the httpx client
  keeps cookies); no proxy from the environment;
- every failure is an ``httpx.HTTPError``: a timeout is an ``httpx.TimeoutException``, a refused
  or dropped connection and anything else aiohttp or the socket raise is an
  ``httpx.TransportError`` (callers such as :func:`appliance.channels.graph.call_json` catch
  only httpx's classes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

__all__ = ["is_loaded", "loaded", "pooled_transport", "preload"]

_loaded: concurrent.futures.Future[ssl.SSLContext] | None = None
_loading = threading.Lock()


def preload() -> concurrent.futures.Future[ssl.SSLContext]:
    """Import aiohttp and ``httpx_aiohttp`` and build the TLS context in a thread (once per
    process); the future holds the context, or the import's exception.

    The thread is not a daemon: an interpreter that exits while it is still importing (a stop
    within half a second of ready) waits for it first. A daemon thread still loading C extensions
    while the interpreter finalizes can crash the process (it did, with SIGSEGV, in CI)."""
    global _loaded
    with _loading:
        if _loaded is None:
            future: concurrent.futures.Future[ssl.SSLContext] = concurrent.futures.Future()

            def load() -> None:
                try:
                    import aiohttp  # noqa: F401
                    import httpx_aiohttp  # noqa: F401

                    future.set_result(httpx.create_ssl_context())
                except BaseException as exc:  # noqa: BLE001 (handed to whoever awaits the future)
                    future.set_exception(exc)

            threading.Thread(target=load, name="aat-load-aiohttp").start()
            _loaded = future
        return _loaded


def is_loaded() -> bool:
    """Whether :func:`preload`'s work is done (then ``import aiohttp`` costs nothing)."""
    return _loaded is not None and _loaded.done() and _loaded.exception() is None


async def loaded() -> ssl.SSLContext:
    """Wait, without blocking the loop, until :func:`preload`'s work is done (starting it if
    nobody has); afterwards ``import aiohttp`` costs nothing."""
    return await asyncio.wrap_future(preload())


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The production transport (see the module docstring)."""
    return _PooledTransport(limits)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    import aiohttp  # loaded by now: only used around requests of the built inner transport

    try:
        yield
    except httpx.ConnectTimeout as exc:
        # httpx_aiohttp maps every aiohttp.ClientConnectionError (a refused or dropped
        # connection too) to ConnectTimeout; only a real timeout should read as one.
        if isinstance(exc.__cause__, aiohttp.ClientConnectionError) and not isinstance(
            exc.__cause__, TimeoutError
        ):
            raise httpx.ConnectError(str(exc), request=request) from exc.__cause__
        raise
    except httpx.HTTPError:
        raise
    except TimeoutError as exc:
        raise httpx.TimeoutException("timed out", request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.TransportError(type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """The response body, with aiohttp's errors turned into httpx's while it is read."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for part in self._inner:
                yield part

    async def aclose(self) -> None:
        with _as_httpx_errors(self._request):
            await self._inner.aclose()


class _PooledTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._inner: AiohttpTransport | None = None

    def _build(self, ssl_context: ssl.SSLContext) -> AiohttpTransport:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        limits = self._limits

        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections or 0,
                keepalive_timeout=limits.keepalive_expiry,
                ssl=ssl_context,
            )
            return aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )

        return AiohttpTransport(limits=limits, client=session)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            ssl_context = await loaded()
            if self._inner is None:  # no await since this check: one inner transport per client
                self._inner = self._build(ssl_context)
        with _as_httpx_errors(request):
            response = await self._inner.handle_async_request(request)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers.raw,
            stream=_Body(response.stream, request),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
