"""A fast Graph API stand-in for the reply benchmark: answers sends like Meta, records arrivals.

    .venv/bin/python bench/graph_sink.py [--port 8300] [--token TOKEN]    # standalone

``POST /{version}/{phone_number_id}/messages`` with a JSON body is answered the way the WhatsApp
Cloud API answers a send::

    200 {"messaging_product":"whatsapp","contacts":[{"input":"<to>","wa_id":"<to>"}],
         "messages":[{"id":"wamid.<unique>"}]}

(``user_id`` instead of ``wa_id`` for a send addressed by BSUID, ``recipient``), and recorded
per recipient (``to`` or ``recipient``): when the request had fully arrived, the text it carried and
the phone number it was sent from. Any other request is answered ``200 {"success":true}`` and
only counted, so a client that calls something else is seen, not failed.

Optionally (``rate_limit``, ``templates``; the broadcast benchmark) it also enforces Meta's
per-number limit the way ``tests/standins/graph_api.py`` does: sends per sliding second,
counted on arrival, per ``phone_number_id``; a send beyond it is answered ``400`` with error
``130429`` and counted in ``refused``, not recorded as a reply. And it answers
``GET /{waba-id}/message_templates`` from ``templates`` (one page).

Unlike ``tests/standins/graph_api.py`` (a threaded ``http.server`` that enforces Meta's limits
and keeps every request for assertions), this one is a raw asyncio protocol that does as little
as possible per request, so that on a 2-core machine it takes little CPU from the servers it
measures, and keeps connections alive as Meta does (the threaded stand-in speaks HTTP/1.0 and
closes every connection). Without ``rate_limit`` it enforces no limit: the reply benchmark
measures the bots, not Meta's limits.

Clock: arrivals are stamped with ``time.monotonic()``, which on Linux is ``CLOCK_MONOTONIC``:
one clock for the whole machine (every process reads the same value), never stepped by NTP the
way ``time.time()`` can be. ``bench/reply.py`` runs the sink in its own process and event loop,
next to the load generator, so the two timestamps of an event (webhook sent, reply arrived) are
read from the same clock in the same process anyway.

In-process use (``bench/reply.py``)::

    sink = GraphSink(token="...", on_reply=callback)   # callback(to, arrived_at)
    await sink.start()          # sink.port
    ...
    sink.reset()                # forget what was recorded (between runs)
    await sink.stop()

Standalone, the sink serves until SIGINT/SIGTERM and then prints its counts as JSON;
``GET /_sink/stats`` answers them while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GraphSink", "Reply"]

_MAX_BODY = 1024 * 1024


@dataclass(slots=True)
class Reply:
    """One send as it arrived."""

    at: float  # time.monotonic() when the whole request had arrived
    text: str | None
    sender: str  # the phone_number_id in the path
    authorized: bool  # the Bearer token was the expected one (or none was expected)


@dataclass
class _Counts:
    sends: int = 0
    other: int = 0
    bad_requests: int = 0
    refused: int = 0  # sends beyond rate_limit, answered 130429
    connections: int = 0  # opened since the last reset: a client whose pool churns opens many
    paths: dict[str, int] = field(default_factory=dict)


def _response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_OTHER = _response("200 OK", b'{"success":true}')
_THROTTLED = _response("400 Bad Request", b'{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException",'
                                          b'"code":130429,"fbtrace_id":"sink"}}')


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: what httpx sends."""

    __slots__ = ("_sink", "_buf", "_transport")

    def __init__(self, sink: GraphSink) -> None:
        self._sink = sink
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._sink.counts.connections += 1

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            length = 0
            auth = None
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "authorization":
                    auth = value.strip()
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked or length > _MAX_BODY:
                self._sink.counts.bad_requests += 1
                self._reply(_response("411 Length Required", b'{"error":{"message":"Content-Length only"}}'))
                self._transport.close()  # type: ignore[union-attr]
                return
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4:total])
            del buf[:total]
            method, _, rest = lines[0].partition(" ")
            path = rest.rpartition(" ")[0]
            self._reply(self._sink.handle(method, path, auth, body))

    def _reply(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


class GraphSink:
    """See the module docstring. ``on_reply(to, at)`` is called on the event loop for every
    send, before it is answered."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        on_reply: Callable[[str, float], None] | None = None,
        rate_limit: int | None = None,
        templates: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._expected_auth = f"Bearer {token}" if token else None
        self.on_reply = on_reply
        self.rate_limit = rate_limit
        self.templates = dict(templates or {})
        self._windows: dict[str, deque[float]] = {}
        self.replies: dict[str, list[Reply]] = {}
        self.counts = _Counts()
        self._ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> GraphSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Protocol(self), self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self.replies = {}
        self.counts = _Counts()

    def stats(self) -> dict[str, Any]:
        answered = len(self.replies)
        duplicates = sum(len(v) - 1 for v in self.replies.values())
        return {"sends": self.counts.sends, "recipients": answered, "duplicate_sends": duplicates,
                "other_requests": self.counts.other, "bad_requests": self.counts.bad_requests,
                "refused_130429": self.counts.refused,
                "connections": self.counts.connections, "paths": dict(self.counts.paths)}

    def handle(self, method: str, path: str, auth: str | None, body: bytes) -> bytes:
        now = time.monotonic()
        parts = path.split("?", 1)[0].strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[2] == "messages":
            try:
                data = json.loads(body)
                # ``to``: a phone number (wa_id); ``recipient``: a business-scoped user id (BSUID).
                to = data.get("to") or data.get("recipient")
                key = "wa_id" if data.get("to") else "user_id"
            except (ValueError, AttributeError):
                data, to = None, None
            if not isinstance(to, str):
                self.counts.bad_requests += 1
                return _response("400 Bad Request",
                                 b'{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}')
            if self.rate_limit is not None and not self._within_rate(parts[1], now):
                self.counts.refused += 1
                return _THROTTLED
            text = data.get("text")
            reply = Reply(
                at=now, text=text.get("body") if isinstance(text, dict) else None, sender=parts[1],
                authorized=self._expected_auth is None or auth == self._expected_auth,
            )
            self.counts.sends += 1
            self.replies.setdefault(to, []).append(reply)
            if self.on_reply is not None:
                self.on_reply(to, now)
            answer = json.dumps({
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, key: to}],
                "messages": [{"id": f"wamid.SINK{next(self._ids):012d}"}],
            }, separators=(",", ":")).encode()
            return _response("200 OK", answer)
        if method == "GET" and len(parts) == 3 and parts[2] == "message_templates" and parts[1] in self.templates:
            return _response("200 OK", json.dumps({"data": self.templates[parts[1]], "paging": {}}).encode())
        if method == "GET" and path == "/_sink/stats":
            return _response("200 OK", json.dumps(self.stats()).encode())
        self.counts.other += 1
        key = f"{method} /{'/'.join(parts[1:]) if len(parts) > 1 else parts[0]}"
        self.counts.paths[key] = self.counts.paths.get(key, 0) + 1
        return _OTHER


    def _within_rate(self, sender: str, now: float) -> bool:
        """Meta's per-number limit: at most ``rate_limit`` sends in any sliding second."""
        window = self._windows.setdefault(sender, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:  # type: ignore[operator]
            return False
        window.append(now)
        return True


async def _serve(args: argparse.Namespace) -> dict[str, Any]:
    sink = await GraphSink(host=args.host, port=args.port, token=args.token).start()
    print(f"graph sink listening on {sink.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.stop()
    return sink.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast Graph API stand-in that records sends.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--token", default=None, help="the Bearer token sends must carry (default: any)")
    print(json.dumps(asyncio.run(_serve(parser.parse_args()))))


if __name__ == "__main__":
    main()
