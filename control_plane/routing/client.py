"""The forwarder's HTTP client: one ``aiohttp.ClientSession`` used directly (no httpx layer).

Why not the appliance's ``httpx.AsyncClient`` over ``pooled_transport``: httpx's request and
response models and the adapter's conversion cost about 1.1 CPU-ms per forward against about
0.4 for aiohttp alone (BENCHMARKS.md, "Control plane router"). The appliance's "one injected
httpx client" rule is the appliance's; the router sends one kind of request to its tenants only.

Contract of :class:`ForwardingClient`:

- the session is created on the first :meth:`~ForwardingClient.post`, inside the running loop
  (so the client can be built anywhere), and closed by :meth:`~ForwardingClient.aclose`, after
  which the client must not be used again;
- no global connection cap (``TCPConnector(limit=0)``): each tenant's worker caps its own
  requests in flight, so a dead tenant cannot use up connections a healthy one needs;
- idle connections are kept ``KEEPALIVE_SECONDS`` (4 s), under the appliance server's (uvicorn's)
  5 s, so a connection is not reused just as the tenant closes it and a torn-down tenant's idle
  connections close by themselves;
- TLS verified with aiohttp's default context; no cookies (``DummyCookieJar``); nothing taken from
  the environment (``trust_env=False``: no proxy, no ``.netrc``); no redirects followed;
- :meth:`~ForwardingClient.post` returns the status after reading the whole answer (so the
  connection goes back to the pool), or raises: ``TimeoutError`` when ``timeout`` seconds passed
  (connecting, sending and the whole answer: one ``asyncio.timeout``, aiohttp's own timers off),
  else ``aiohttp.ClientError`` or ``OSError``;
- each distinct URL is parsed once (``yarl.URL``, cached; a tenant has two paths), not per forward.
"""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

__all__ = ["KEEPALIVE_SECONDS", "ForwardingClient", "forwarding_client"]

KEEPALIVE_SECONDS = 4.0
_MAX_URLS = 10_000
# One timer per forward: the caller's ``asyncio.timeout`` bounds connecting, sending and the
# whole answer; aiohttp's own timers (its session default is 5 min total, 30 s to connect)
# would each add a timer handle per request.
_NO_TIMERS = aiohttp.ClientTimeout()


class ForwardingClient:
    def __init__(self, *, user_agent: str) -> None:
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}  # parsed once per tenant URL, not per forward

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # no await in between: one session however many first posts
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.user_agent},
                                                  cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST ``body`` to ``url``; the answer's status (see the module docstring for errors)."""
        session = self._open()
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        async with asyncio.timeout(timeout), session.post(parsed, data=body, headers=headers, allow_redirects=False,
                                                          timeout=_NO_TIMERS) as response:
            await response.read()
            return response.status

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def forwarding_client(*, user_agent: str) -> ForwardingClient:
    """The forwarder's own client (see the module docstring)."""
    return ForwardingClient(user_agent=user_agent)
