"""The broadcast send path: what the sender does differently for bulk messages (``priority`` > 0).

A broadcast sends many alike messages at the channel's full rate (up to 1,000 a second on one
WhatsApp number), so the CPU each one costs decides the rate reached (BENCHMARKS.md,
"Broadcasts"). What a message is allowed to do does not change (policy at send time, the
channel's limiter, retries, in-doubt recovery: appliance/outbox/sender.py); two costs do:

- :class:`GraphWire`: WhatsApp sends go through one ``aiohttp.ClientSession`` directly instead
  of the appliance's ``httpx.AsyncClient`` (whose request and response objects cost about
  1 CPU-ms per request here, aiohttp alone about 0.25 ms). The body is encoded once with the C
  JSON encoder; the URL and the request's own headers are parsed once per (URL, token). Same
  contract as :func:`appliance.channels.graph.post_message`: a 2xx JSON answer is ``ok`` with
  ``messages[0].id``; a 2xx answer that is not JSON is ``ok`` without an id; anything else is
  a :class:`GraphError` (Meta's ``error`` object) with Meta's wait (``retry_after``); a
  timeout or a failed connection is ``GraphError(code=None)``. The pool
  holds up to ``connections`` keep-alive connections (sized to the sender's sends in flight,
  so a send never queues for a connection).
- :class:`Recorder`: the outcomes of many sends are written in one gateway job (group commit)
  instead of one job each. At most one such job is in the writer at a time; outcomes arriving
  meanwhile wait for the next one, so the batch grows with the rate and a commit is shared by
  everything that finished during the previous one. Every outcome runs in its own savepoint:
  one that fails rolls back alone and only its caller gets the exception. A caller's await
  returns once its outcome is committed. The batch's recorded sends
  (:func:`appliance.outbox.store.mark_sent`) are written together first, one ``executemany``
  per statement, with exactly the rows and events ``mark_sent`` writes one by one; only if
  that fails are they run one by one.

Crash safety is the outbox's: a message is durably ``sending`` (claimed) before its request
leaves, and an outcome not yet committed at a SIGKILL leaves it ``sending``, i.e. in doubt,
which recovery settles from Meta's status or echo before it would ever send it again
(:func:`appliance.outbox.store.recover_in_doubt`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from appliance.channels import transport
from appliance.channels.graph import graph_error, retry_after
from appliance.channels.outbound import GraphError, SendResult
from appliance.outbox import store
from appliance.store.gateway import Gateway

if TYPE_CHECKING:
    import aiohttp

__all__ = ["GraphWire", "Recorder"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _whatsapp_message_id(data: Mapping[str, Any]) -> str | None:
    messages = data.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    value = first.get("id") if isinstance(first, dict) else None
    return value if isinstance(value, str) and value else None


class GraphWire:
    """Graph API sends over aiohttp (see the module docstring). Create and use on one loop."""

    def __init__(self, *, user_agent: str, timeout: float, connections: int) -> None:
        self._user_agent = user_agent
        self._timeout = timeout  # aiohttp is loaded after start (appliance/channels/transport.py)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[tuple[str, str], tuple[Any, Any]] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=15.0)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                headers={"User-Agent": self._user_agent},
                # Per socket operation, not a total: aiohttp then keeps one timer per request
                # (the read's) instead of three. A send's answer is one small read.
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

            if len(self._targets) > 64:
                self._targets.clear()
            target = self._targets[(url, token)] = (
                URL(url), CIMultiDict({"Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
        return target

    async def post_whatsapp(self, url: str, token: str, body: Mapping[str, Any]) -> SendResult:
        """POST one WhatsApp ``/<phone-number-id>/messages`` body."""
        if not transport.is_loaded():  # aiohttp is loaded in a thread after start
            await transport.loaded()
        import aiohttp

        target, own_headers = self._target(url, token)
        try:
            async with self._session_now().post(
                target, data=_encode(body).encode(), headers=own_headers
            ) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except TimeoutError:
            return SendResult(ok=False, error=GraphError(code=None, message="timeout"))
        except (aiohttp.ClientError, OSError):
            return SendResult(ok=False, error=GraphError(code=None, message="connection failed"))
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            decoded = None
        answer = decoded if isinstance(decoded, dict) else None
        if 200 <= status < 300:
            if answer is None:
                return SendResult(ok=True, raw={})
            if not isinstance(answer.get("error"), dict):
                return SendResult(ok=True, external_id=_whatsapp_message_id(answer), raw=answer)
        return SendResult(
            ok=False, error=graph_error(status, answer),
            retry_after=retry_after(httpx.Headers(list(headers.items()))), raw=answer or {},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _run_each(db: Any, items: list[_Item]) -> list[tuple[bool, Any]]:
    """One gateway job: every item in its own savepoint (see :class:`Recorder`); the items
    that record a send (:func:`appliance.outbox.store.mark_sent` of one request) together
    first, by :func:`appliance.outbox.store.mark_sent_many`, and one by one only if that fails."""
    conn = db.conn
    outcomes: list[tuple[bool, Any] | None] = [None] * len(items)
    sent = [i for i, (fn, args, kwargs) in enumerate(items) if fn is store.mark_sent and len(args) == 4
            and len(args[2]) <= 1 and set(kwargs) <= {"messaging_type", "tag"}]
    if len(sent) > 1:
        conn.execute("SAVEPOINT bulk_sent")
        try:
            store.mark_sent_many(db, [(items[i][1], items[i][2]) for i in sent])
        except Exception:  # each one alone below, so that only a failing one fails
            if not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO bulk_sent")
        else:
            for i in sent:
                outcomes[i] = (True, None)
        conn.execute("RELEASE bulk_sent")
    for index, (fn, args, kwargs) in enumerate(items):
        if outcomes[index] is not None:
            continue
        conn.execute("SAVEPOINT bulk_item")
        try:
            value = fn(db, *args, **kwargs)
        except Exception as exc:  # handed to that item's caller
            if not conn.in_transaction:
                raise  # the error ended the whole transaction: the gateway fails the job
            conn.execute("ROLLBACK TO bulk_item")
            conn.execute("RELEASE bulk_item")
            outcomes[index] = (False, exc)
            continue
        conn.execute("RELEASE bulk_item")
        outcomes[index] = (True, value)
    return outcomes  # type: ignore[return-value]


class Recorder:
    """Group commit of many small writes (see the module docstring). Use on one loop."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._waiting: list[tuple[_Item, asyncio.Future[Any]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(db, *args, **kwargs)`` in the next batch; its result once committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(((fn, args, kwargs), future))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    outcomes = await self._gateway.write(_run_each, [item for item, _ in batch])
                except Exception as exc:  # every caller of the batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flushing = False
