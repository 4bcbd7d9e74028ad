"""The production HTTP client (``appliance.app._http_client``: httpx over aiohttp's pool, used for
every Graph call but the message sends, e.g. through ``appliance.channels.graph.call_json``)
against real servers on loopback: exact requests, Graph answers and errors, timeouts, dropped
and refused connections, and connections kept across bursts (no reconnect churn)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from appliance import __version__
from appliance.app import _http_client
from appliance.channels.graph import call_json
from appliance.settings import Settings
from tests.appliance.sender_helpers import tuned
from tests.standins.graph_api import GraphStandIn, Scripted
from tests.standins.keepalive import CountingServer

TOKEN = "EAAtesttoken"
BODY = {"messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": {"body": "Grüße"}}


async def test_a_call_arrives_exactly_and_the_answer_is_read(settings: Settings, graph_api: GraphStandIn):
    client = _http_client(settings)
    try:
        data, error = await call_json(client, "POST", f"{graph_api.base_url}/v25.0/106/messages", TOKEN, body=BODY)
    finally:
        await client.aclose()
    assert error is None and data["messages"][0]["id"] == "wamid.OUT1"
    [request] = graph_api.sends_to("106")
    assert (request.method, request.path) == ("POST", "/v25.0/106/messages")
    assert request.json == BODY
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"aat-appliance/{__version__}"
    assert "cookie" not in request.headers
    assert graph_api.violations == []


async def test_graph_errors_come_through(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next(
        "106",
        GraphStandIn.graph_error(130429, message="rate", headers={"Retry-After": "7"}),
        Scripted(status=503, body=b"<html>busy</html>"),
        Scripted(status=200, body=b"not json"),
    )
    url = f"{graph_api.base_url}/v25.0/106/messages"
    client = _http_client(settings)
    try:
        throttled = await call_json(client, "POST", url, TOKEN, body=BODY)
        unavailable = await call_json(client, "POST", url, TOKEN, body=BODY)
        accepted = await call_json(client, "POST", url, TOKEN, body=BODY)
    finally:
        await client.aclose()
    assert throttled[0] is None
    assert (throttled[1].code, throttled[1].http_status, throttled[1].fbtrace_id) == (130429, 400, "trace130429")
    assert unavailable[0] is None and (unavailable[1].code, unavailable[1].http_status) == (None, 503)
    assert accepted == ({}, None)


async def test_a_slow_answer_is_a_timeout(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next("106", Scripted(status=200, body=b"{}", delay=1.0))
    client = _http_client(tuned(settings, http_timeout_seconds=0.2))
    try:
        result = await call_json(client, "POST", f"{graph_api.base_url}/v25.0/106/messages", TOKEN, body=BODY)
        with pytest.raises(httpx.TimeoutException):
            graph_api.fail_next("106", Scripted(status=200, body=b"{}", delay=1.0))
            await client.post(f"{graph_api.base_url}/v25.0/106/messages", json=BODY,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        await client.aclose()
    assert result[0] is None and result[1].message == "timeout"


async def test_dropped_and_refused_connections_are_transport_errors(settings: Settings, graph_api: GraphStandIn):
    graph_api.fail_next("106", Scripted(drop=True))
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"{graph_api.base_url}/v25.0/106/messages"
    client = _http_client(settings)
    try:
        dropped = await call_json(client, "POST", url, TOKEN, body=BODY)
        refused = await call_json(client, "POST", f"http://127.0.0.1:{closed_port}/v25.0/106/messages", TOKEN,
                                  body=BODY)
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{closed_port}/x", json={})
        after = await call_json(client, "POST", url, TOKEN, body=BODY)
    finally:
        await client.aclose()
    assert dropped[0] is None and dropped[1].message == "connection failed"
    assert refused[0] is None and refused[1].message == "connection failed"
    assert after[1] is None  # the pool recovers from the dropped connection


async def test_bursts_reuse_their_connections(settings: Settings):
    server = CountingServer()
    base = await server.start()
    client = _http_client(settings)
    try:
        for _ in range(3):  # three bursts of the sender's full concurrency
            results = await asyncio.gather(
                *(call_json(client, "POST", f"{base}/v25.0/106/messages", TOKEN, body=BODY) for _ in range(64))
            )
            assert all(error is None for _, error in results)
    finally:
        await client.aclose()
        await server.stop()
    assert server.requests == 192
    # The first burst opens at most one connection per request in flight; later bursts find
    # them all kept alive (httpcore's pool closed everything above 20 and reopened it).
    assert server.connections <= 64
