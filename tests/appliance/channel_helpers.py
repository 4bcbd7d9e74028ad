"""Helpers shared by the channel adapter tests: the Meta fixtures, delivery builders, and a
Graph API stand-in on loopback that answers each request with a test's ``respond`` function."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from appliance.channels.base import ChannelAdapter
from appliance.channels.events import ParsedWebhook
from appliance.channels.outbound import ChannelAccount, SendResult
from appliance.channels.wire import GraphWire
from appliance.settings import Settings
from tests.conftest import FIXTURES, RUN_STARTED_AT, fixture_json
from tests.standins.loopback import LoopbackStandIn, StandInHandler

PAGE_ID = "112233445566778"
PSID = "2460001112223334"
IG_ID = "17841455566677788"
IGSID = "6120001112223334"
PHONE_NUMBER_ID = "109876543210987"
WABA_ID = "203040506070809"
T_S = RUN_STARTED_AT  # the fixtures' times, as loaded (tests/conftest.py)
T_MS = T_S * 1000 + 367
TOKEN = "EAAG-secret-token"


def load_fixture(name: str) -> dict[str, Any]:
    return fixture_json(name)


def at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def at_s(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def messaging_event(
    sender: str = PSID, recipient: str = PAGE_ID, timestamp: Any = T_MS, **variant: Any
) -> dict[str, Any]:
    """One ``messaging[]`` item; ``variant`` is e.g. ``message={...}``."""
    event: dict[str, Any] = {"sender": {"id": sender}, "recipient": {"id": recipient}}
    if timestamp is not None:
        event["timestamp"] = timestamp
    event.update(variant)
    return event


def messaging_entry(
    asset_id: str = PAGE_ID, events: list[Any] | None = None, time: Any = T_MS,
    key: str = "messaging",
) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": asset_id, key: events or []}
    if time is not None:
        entry["time"] = time
    return entry


def delivery(obj: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": obj, "entry": list(entries)}


def wa_value(**fields: Any) -> dict[str, Any]:
    """A WhatsApp change ``value`` with the standard metadata plus ``fields``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
    }
    value.update(fields)
    return value


def wa_delivery(*values: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{
        "id": WABA_ID, "changes": [{"field": field, "value": v} for v in values],
    }]}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"graph_api_base": "https://graph.test", "instagram_api_base": "https://ig.test",
                              "graph_api_version": "v25.0", "http_timeout_seconds": 5.0}
    return Settings(**(values | overrides))


# The hosts make_settings() names, as MockGraph serves them: a path prefix on loopback.
_HOSTS = {"graph": "https://graph.test", "ig": "https://ig.test"}
SLOW_SECONDS = 1.0  # how long MockGraph waits when ``respond`` raises a timeout
WIRE_TIMEOUT = 0.3  # the wire's timeout in send_once: below SLOW_SECONDS


class MockGraph(LoopbackStandIn):
    """A real HTTP server on loopback that records every request (as an ``httpx.Request`` at
    the URL the appliance meant: ``https://graph.test/...`` or ``https://ig.test/...``, see
    :meth:`settings`) and answers with ``respond(request)``. When ``respond`` raises an
    ``httpx.TimeoutException`` the answer comes after :data:`SLOW_SECONDS`; any other
    ``httpx.TransportError`` drops the connection without an answer."""

    quiet_errors = True

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond
        super().__init__()

    def settings(self) -> Settings:
        """:func:`make_settings` with both Graph hosts pointed at this server."""
        return make_settings(graph_api_base=f"{self.origin}/graph", instagram_api_base=f"{self.origin}/ig")

    def _handler_class(self) -> type[StandInHandler]:
        graph = self

        class Handler(StandInHandler):
            def do_POST(self) -> None:
                prefix, _, rest = self.path.lstrip("/").partition("/")
                request = httpx.Request("POST", f"{_HOSTS.get(prefix, 'http://unknown')}/{rest}",
                                        headers=dict(self.headers.items()), content=self.read_body())
                with graph._lock:
                    graph.requests.append(request)
                try:
                    response = graph._respond(request)
                except httpx.TimeoutException:
                    time.sleep(SLOW_SECONDS)
                    response = httpx.Response(200, json={})
                except httpx.TransportError:
                    self.close_connection = True
                    return
                headers = {k: v for k, v in response.headers.items()
                           if k.lower() not in ("content-length", "content-type", "transfer-encoding")}
                self.send_body(response.status_code, response.content,
                               content_type=response.headers.get("content-type"), headers=headers)

        return Handler

    @property
    def last_json(self) -> Any:
        return json.loads(self.requests[-1].content)


async def send_once(
    adapter: ChannelAdapter, account: ChannelAccount, body: dict[str, Any],
    respond: Callable[[httpx.Request], httpx.Response],
) -> tuple[MockGraph, SendResult]:
    """``adapter.send`` of ``body`` for ``account`` through a real :class:`GraphWire` against a
    :class:`MockGraph` answering with ``respond``: the graph (its recorded requests) and the
    result."""
    graph = MockGraph(respond).start()
    wire = GraphWire(user_agent="aat-appliance/test", timeout=WIRE_TIMEOUT, connections=2)
    try:
        result = await adapter.send(wire, graph.settings(), account, body)
    finally:
        await wire.aclose()
        graph.stop()
    return graph, result


def only_event(result: ParsedWebhook) -> Any:
    """The one event of a delivery that parsed with no problems and nothing ignored."""
    assert result.problems == [] and result.ignored == 0
    assert len(result.events) == 1
    return result.events[0]
