"""The production HTTP client (``appliance.app._http_client``: httpx over aiohttp's pool) against
real servers on loopback: exact requests, Graph answers and errors, timeouts, dropped and refused
connections, and connections kept across bursts (no reconnect churn)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from appliance import __version__
from appliance.app import _http_client
from appliance.channels.graph import post_message
from appliance.settings import Settings
from tests.standins.graph_api import GraphStandIn, Scripted

TOKEN = "EAAtesttoken"
BODY = {"messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": {"body": "Grüße"}}


def _wamid(data):
    return data["messages"][0]["id"]


async def test_send_arrives_exactly_and_the_answer_is_read(settings: Settings, graph_api: GraphStandIn):
    client = _http_client(settings)
    try:
        result = await post_message(client, f"{graph_api.base_url}/v25.0/106/messages", TOKEN, BODY, _wamid)
    finally:
        await client.aclose()
    assert result.ok and result.external_id == "wamid.OUT1"
    [request] = graph_api.sends_to("106")
    assert (request.method, request.path) == ("POST", "/v25.0/106/messages")
    assert request.json == BODY
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"aat-appliance/{__version__}"
    assert "cookie" not in request.headers
    assert graph_api.violations == []


async def test_graph_errors_and_retry_hints_come_through(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next(
        "106",
        GraphStandIn.graph_error(130429, message="rate", headers={"Retry-After": "7"}),
        Scripted(status=503, body=b"<html>busy</html>"),
        Scripted(status=200, body=b"not json"),
    )
    url = f"{graph_api.base_url}/v25.0/106/messages"
    client = _http_client(settings)
    try:
        throttled = await post_message(client, url, TOKEN, BODY, _wamid)
        unavailable = await post_message(client, url, TOKEN, BODY, _wamid)
        accepted = await post_message(client, url, TOKEN, BODY, _wamid)
    finally:
        await client.aclose()
    assert not throttled.ok
    assert (throttled.error.code, throttled.error.http_status, throttled.retry_after) == (130429, 400, 7.0)
    assert throttled.error.fbtrace_id == "trace130429"
    assert not unavailable.ok
    assert (unavailable.error.code, unavailable.error.http_status) == (None, 503)
    assert accepted.ok and accepted.external_id is None


async def test_a_slow_answer_is_a_timeout(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next("106", Scripted(status=200, body=b"{}", delay=1.0))
    client = _http_client(settings)
    try:
        result = await post_message(client, f"{graph_api.base_url}/v25.0/106/messages", TOKEN, BODY, _wamid,
                                    timeout=0.2)
        with pytest.raises(httpx.TimeoutException):
            graph_api.fail_next("106", Scripted(status=200, body=b"{}", delay=1.0))
            await client.post(f"{graph_api.base_url}/v25.0/106/messages", json=BODY, timeout=0.2,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        await client.aclose()
    assert not result.ok and result.error.message == "timeout"


async def test_dropped_and_refused_connections_are_transport_errors(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next("106", Scripted(drop=True))
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = _http_client(settings)
    try:
        dropped = await post_message(client, f"{graph_api.base_url}/v25.0/106/messages", TOKEN, BODY, _wamid)
        refused = await post_message(client, f"http://127.0.0.1:{closed_port}/v25.0/106/messages", TOKEN, BODY,
                                     _wamid)
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{closed_port}/x", json={})
        after = await post_message(client, f"{graph_api.base_url}/v25.0/106/messages", TOKEN, BODY, _wamid)
    finally:
        await client.aclose()
    assert not dropped.ok and dropped.error.message == "connection failed"
    assert not refused.ok and refused.error.message == "connection failed"
    assert after.ok  # the pool recovers from the dropped connection


class _CountingServer:
    """A keep-alive HTTP/1.1 server that answers every request ``200 {}`` a little later and
    counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0,
                )
                await reader.readexactly(length)
                self.requests += 1
                await asyncio.sleep(0.02)  # keep many requests in flight at once
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_bursts_reuse_their_connections(settings: Settings):
    server = _CountingServer()
    base = await server.start()
    client = _http_client(settings)
    try:
        for _ in range(3):  # three bursts of the sender's full concurrency
            results = await asyncio.gather(
                *(post_message(client, f"{base}/v25.0/106/messages", TOKEN, BODY, lambda d: None) for _ in range(64))
            )
            assert all(r.ok for r in results)
    finally:
        await client.aclose()
        await server.stop()
    assert server.requests == 192
    # The first burst opens at most one connection per request in flight; later bursts find
    # them all kept alive (httpcore's pool closed everything above 20 and reopened it).
    assert server.connections <= 64
