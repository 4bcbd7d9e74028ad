"""The wire every message leaves by (appliance/channels/wire.py), against real servers on
loopback: the exact request, Meta's answers and waits, errors that never raise and never carry
the token or the body, timeouts, dropped and refused connections, and connections kept across
bursts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from appliance.channels.outbound import GraphError, SendResult
from appliance.channels.wire import GraphWire
from tests.appliance.channel_helpers import TOKEN, WIRE_TIMEOUT, MockGraph
from tests.standins.graph_api import GraphStandIn, Scripted
from tests.standins.keepalive import CountingServer

PHONE = "109000000000777"
BODY = {"messaging_product": "whatsapp", "to": "995555000111", "type": "text", "text": {"body": "Grüße ä"}}


def _message_id(data: dict) -> str | None:
    return data.get("message_id")


@pytest.fixture
async def wire() -> AsyncIterator[GraphWire]:
    wire = GraphWire(user_agent="aat-appliance/test", timeout=WIRE_TIMEOUT, connections=4)
    yield wire
    await wire.aclose()


async def _post(wire: GraphWire, respond: Callable[[httpx.Request], httpx.Response],
                body: dict | None = None) -> tuple[MockGraph, SendResult]:
    graph = MockGraph(respond).start()
    try:
        result = await wire.post(graph.settings().graph_url("1/messages"), TOKEN, body or BODY, _message_id)
    finally:
        graph.stop()
    return graph, result


async def test_a_send_is_json_with_the_bearer_token_and_the_answer_is_read(wire: GraphWire) -> None:
    graph, result = await _post(wire, lambda r: httpx.Response(200, json={"recipient_id": "1", "message_id": "m_1"}))
    [request] = graph.requests
    assert (request.method, str(request.url)) == ("POST", "https://graph.test/v25.0/1/messages")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "aat-appliance/test"
    assert "cookie" not in request.headers
    assert graph.last_json == BODY
    assert "Grüße ä".encode() in request.content  # UTF-8, not \\u escapes
    assert result == SendResult(ok=True, external_id="m_1", raw={"recipient_id": "1", "message_id": "m_1"})


async def test_a_2xx_without_json_is_sent_without_an_id(wire: GraphWire) -> None:
    _, result = await _post(wire, lambda r: httpx.Response(200, text="OK"))
    assert result == SendResult(ok=True, raw={})


async def test_graph_errors_come_with_meta_s_wait(wire: GraphWire) -> None:
    _, result = await _post(wire, lambda r: httpx.Response(
        400, headers={"Retry-After": "60"},
        json={"error": {"message": "(#4) Application request limit reached", "code": 4,
                        "type": "OAuthException", "fbtrace_id": "X"}},
    ))
    assert not result.ok
    assert result.error == GraphError(4, "(#4) Application request limit reached", None, 400, "X", "OAuthException")
    assert result.retry_after == 60.0


async def test_an_error_object_in_a_200_is_an_error(wire: GraphWire) -> None:
    _, result = await _post(wire, lambda r: httpx.Response(200, json={"error": {"code": 1}}))
    assert not result.ok and result.error.code == 1


async def test_an_error_that_is_not_json_is_reported_by_status(wire: GraphWire) -> None:
    _, result = await _post(wire, lambda r: httpx.Response(503, text="<html>down</html>"))
    assert result == SendResult(ok=False, error=GraphError(code=None, message="HTTP 503", http_status=503))


@pytest.mark.parametrize(("failure", "message"), [
    (httpx.ReadTimeout("slow"), "timeout"),
    (httpx.RemoteProtocolError("dropped"), "connection failed"),
])
async def test_transport_failures_are_results_not_exceptions(
    wire: GraphWire, failure: Exception, message: str,
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise failure

    _, result = await _post(wire, respond)
    # No answer came: Meta may have the request, so the sender keeps its rate slot longer.
    assert result == SendResult(ok=False, error=GraphError(code=None, message=message), in_doubt=True)


async def test_a_refused_connection_is_a_failed_connection(wire: GraphWire) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    result = await wire.post(f"http://127.0.0.1:{port}/v25.0/{PHONE}/messages", TOKEN, BODY, _message_id)
    # Never connected, so never sent: not in doubt.
    assert result == SendResult(ok=False, error=GraphError(code=None, message="connection failed"), in_doubt=False)


async def test_the_token_and_the_body_stay_out_of_every_error(wire: GraphWire) -> None:
    body = {"message": {"text": "secret words"}}
    for respond in (
        lambda r: httpx.Response(500, text=TOKEN),
        lambda r: httpx.Response(400, json={"error": {"code": 100, "message": "bad"}}),
    ):
        _, result = await _post(wire, respond, body)
        assert TOKEN not in repr(result.error) and "secret words" not in repr(result.error)


async def test_meta_s_answers_through_the_graph_stand_in(wire: GraphWire, graph_api: GraphStandIn) -> None:
    graph_api.rate_limits[PHONE] = 1000
    graph_api.fail_next(PHONE, GraphStandIn.graph_error(130429, headers={"Retry-After": "7"}),
                        Scripted(status=200, body=b"accepted"), Scripted(drop=True))
    url = f"{graph_api.base_url}/v23.0/{PHONE}/messages"

    def wamid(data: dict) -> str | None:
        return data["messages"][0]["id"]

    throttled = await wire.post(url, TOKEN, BODY, wamid)
    not_json = await wire.post(url, TOKEN, BODY, wamid)
    dropped = await wire.post(url, TOKEN, BODY, wamid)
    sent = await wire.post(url, TOKEN, BODY, wamid)  # the pool recovers from the dropped connection
    assert (throttled.ok, throttled.error.code, throttled.error.http_status, throttled.retry_after) == (
        False, 130429, 400, 7.0)
    assert throttled.error.fbtrace_id == "trace130429"
    assert (not_json.ok, not_json.external_id) == (True, None)
    assert dropped == SendResult(ok=False, error=GraphError(code=None, message="connection failed"), in_doubt=True)
    assert sent.ok and sent.external_id and sent.external_id.startswith("wamid.")
    assert graph_api.sends_to(PHONE)[-1].json == BODY
    assert graph_api.violations == []


async def test_bursts_reuse_their_connections() -> None:
    server = CountingServer()
    base = await server.start()
    wire = GraphWire(user_agent="aat-appliance/test", timeout=5.0, connections=64)
    try:
        for _ in range(3):  # three bursts of the sender's full concurrency
            results = await asyncio.gather(
                *(wire.post(f"{base}/v25.0/106/messages", TOKEN, BODY, _message_id) for _ in range(64)))
            assert all(r.ok for r in results)
    finally:
        await wire.aclose()
        await server.stop()
    assert server.requests == 192
    assert server.connections <= 64  # the first burst's connections are all kept alive
