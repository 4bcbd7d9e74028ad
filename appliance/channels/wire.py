"""The wire every message leaves by: Graph API sends over one ``aiohttp.ClientSession``.

Sending is the appliance's hottest outbound path (every bot reply, flow message, agent reply
and broadcast message), so it skips the ``httpx.AsyncClient`` the rest of the appliance uses for
Graph calls (profile settings, template lookups): httpx's request and response objects cost
about 1 CPU-ms per request here on top of aiohttp's 0.25 ms (BENCHMARKS.md, "Broadcasts" and
"Inbound message -> bot reply"). The body is encoded once with the C JSON encoder; the URL and
the request's own headers are parsed once per (URL, token).

Contract of :meth:`GraphWire.post` (what the channel adapters' ``send`` and
``reply_to_comment`` return): it never raises for HTTP, Graph or transport failures, and never
puts the token or the body into any message.

- a 2xx JSON object without an ``error`` object is ``ok``, with the id ``message_id`` picks
  from it (``external_id``) and the answer (``raw``);
- a 2xx answer that is not a JSON object still means Meta accepted the message: ``ok`` with no
  id (the echo or status will carry it);
- anything else is ``ok=False`` with a :class:`GraphError` (Meta's ``error`` object, or
  ``HTTP <status>``) and Meta's wait (``retry_after``, :func:`appliance.channels.graph.retry_after`);
- a timeout is ``GraphError(code=None, message="timeout")``, a refused, dropped or failed
  connection ``GraphError(code=None, message="connection failed")``; both are ``in_doubt``
  (Meta may have the request or still get it), except a connection that was never made.

The pool holds up to ``connections`` keep-alive connections (sized to the sender's sends in
flight, so a send never queues for a connection), verifies TLS with the same context as the
httpx client (:mod:`appliance.channels.transport`), keeps no cookies and reads no proxy from the
environment. aiohttp itself is loaded in a thread after start (``transport.preload``): a send
that comes sooner waits for that load without blocking the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from appliance.channels import transport
from appliance.channels.graph import graph_error, retry_after
from appliance.channels.outbound import GraphError, SendResult

if TYPE_CHECKING:
    import aiohttp

__all__ = ["GraphWire", "MessageId"]

MessageId = Callable[[Mapping[str, Any]], str | None]
"""Picks the sent message's (or created object's) id from a successful Graph answer."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_TARGETS_KEPT = 64


class GraphWire:
    """Graph API sends over aiohttp (see the module docstring). Create and use on one loop;
    :meth:`aclose` closes the pool, and the next send opens a new one."""

    def __init__(self, *, user_agent: str, timeout: float, connections: int) -> None:
        self._user_agent = user_agent
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[tuple[str, str], tuple[Any, Any]] = {}

    async def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context = await transport.loaded()  # aiohttp is importable once this is done
            import aiohttp

            if self._session is None:  # no other send made one while this one waited
                connector = aiohttp.TCPConnector(
                    limit=self._connections, keepalive_timeout=15.0, ssl=ssl_context)
                self._session = aiohttp.ClientSession(
                    connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                    headers={"User-Agent": self._user_agent},
                    # Per socket operation, not a total: aiohttp then keeps one timer per
                    # request (the read's) instead of three. A send's answer is one small read.
                    timeout=aiohttp.ClientTimeout(sock_connect=min(5.0, self._timeout), sock_read=self._timeout),
                )
        return self._session

    def _target(self, url: str, token: str) -> tuple[Any, Any]:
        """The parsed URL and the request's own headers, made once per (url, token) rather
        than parsed and merged again for every message."""
        target = self._targets.get((url, token))
        if target is None:
            from multidict import CIMultiDict
            from yarl import URL

            if len(self._targets) >= _TARGETS_KEPT:
                self._targets.clear()
            target = self._targets[(url, token)] = (
                URL(url), CIMultiDict({"Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
        return target

    async def post(self, url: str, token: str, body: Mapping[str, Any], message_id: MessageId) -> SendResult:
        """POST ``body`` as JSON to ``url`` with ``Authorization: Bearer <token>`` (contract:
        the module docstring)."""
        session = self._session if self._session is not None else await self._session_now()
        import aiohttp  # loaded: the session exists

        target, own_headers = self._target(url, token)
        try:
            async with session.post(target, data=_encode(body).encode(), headers=own_headers) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except TimeoutError:
            return SendResult(ok=False, error=GraphError(code=None, message="timeout"), in_doubt=True)
        except aiohttp.ClientConnectorError:  # no connection was made: the request never left
            return SendResult(ok=False, error=GraphError(code=None, message="connection failed"))
        except (aiohttp.ClientError, OSError):
            return SendResult(ok=False, error=GraphError(code=None, message="connection failed"), in_doubt=True)
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            decoded = None
        answer = decoded if isinstance(decoded, dict) else None
        if 200 <= status < 300:
            if answer is None:
                return SendResult(ok=True, raw={})
            if not isinstance(answer.get("error"), dict):
                return SendResult(ok=True, external_id=message_id(answer), raw=answer)
        return SendResult(ok=False, error=graph_error(status, answer), retry_after=retry_after(headers),
                          raw=answer or {})

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
