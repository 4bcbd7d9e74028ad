"""Helpers for flow tests that go through the real stack: signed webhooks in, the Graph API
stand-in out."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from tests.conftest import fixture_json
from tests.helpers import ingest, wait_until
from tests.standins.graph_api import GraphStandIn, RecordedRequest

FLOWS = Path(__file__).parent.parent / "fixtures" / "flows"
_ids = itertools.count(1)

ASSETS = {"messenger": "112233445566778", "instagram": "17841455566677788", "whatsapp": "109876543210987"}
CONTACTS = {"messenger": "2460001112223334", "instagram": "6120001112223334", "whatsapp": "995555123456"}


def flow_fixture(name: str) -> dict[str, Any]:
    return json.loads((FLOWS / f"{name}.json").read_text())


async def publish_flow(client: AsyncTestClient, headers: dict[str, str], document: dict[str, Any]) -> str:
    created = await client.post("/api/v1/flows", json=document, headers=headers)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    published = await client.post(f"/api/v1/flows/{flow_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return flow_id


def text_delivery(channel: str, text: str, *, sender: str | None = None) -> bytes:
    """A signed-ready delivery of one text from the contact, with a fresh message id."""
    n = next(_ids)
    if channel == "whatsapp":
        body = fixture_json("whatsapp_text")
        value = body["entry"][0]["changes"][0]["value"]
        message = value["messages"][0]
        message["id"] = f"wamid.TEST{n}"
        message["text"]["body"] = text
        if sender:
            message["from"] = sender
            value["contacts"][0]["wa_id"] = sender
            value["contacts"][0].pop("user_id", None)
        return json.dumps(body).encode()
    body = fixture_json("messenger_text" if channel == "messenger" else "instagram_text")
    event = body["entry"][0]["messaging"][0]
    event["message"] = {"mid": f"m_test{n}", "text": text}
    if sender:
        event["sender"]["id"] = sender
    return json.dumps(body).encode()


def tap_delivery(channel: str, payload: str, title: str, *, sender: str | None = None) -> bytes:
    """The contact taps a button we sent: postback (Messenger), quick reply (Instagram),
    interactive button reply (WhatsApp)."""
    n = next(_ids)
    if channel == "whatsapp":
        body = fixture_json("whatsapp_button_reply")
        message = body["entry"][0]["changes"][0]["value"]["messages"][0]
        message["id"] = f"wamid.TAP{n}"
        message["interactive"]["button_reply"] = {"id": payload, "title": title}
        if sender:
            message["from"] = sender
            body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = sender
        return json.dumps(body).encode()
    if channel == "messenger":
        body = fixture_json("messenger_postback")
        event = body["entry"][0]["messaging"][0]
        event["postback"] = {"title": title, "payload": payload, "mid": f"m_tap{n}"}
    else:
        body = fixture_json("instagram_text")
        event = body["entry"][0]["messaging"][0]
        event["message"] = {"mid": f"m_tap{n}", "text": title, "quick_reply": {"payload": payload}}
    if sender:
        event["sender"]["id"] = sender
    return json.dumps(body).encode()


async def say(client: AsyncTestClient, channel: str, text: str, **kw: Any) -> None:
    await ingest(client, text_delivery(channel, text, **kw))


async def tap(client: AsyncTestClient, channel: str, payload: str, title: str, **kw: Any) -> None:
    await ingest(client, tap_delivery(channel, payload, title, **kw))


async def sent(graph_api: GraphStandIn, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
    """Wait until the stand-in has received ``count`` sends; return them in order."""

    async def enough() -> bool:
        return len(graph_api.requests) >= count

    await wait_until(enough, timeout)
    return list(graph_api.requests)


def texts_of(requests: list[RecordedRequest]) -> list[str | None]:
    """The visible text of each send, whatever the channel's body shape."""
    result: list[str | None] = []
    for request in requests:
        body = request.json
        if body.get("messaging_product") == "whatsapp":
            if body["type"] == "text":
                result.append(body["text"]["body"])
            elif body["type"] == "interactive":
                result.append(body["interactive"]["body"]["text"])
            else:
                result.append(None)
            continue
        message = body.get("message", {})
        if "text" in message:
            result.append(message["text"])
            continue
        payload = message.get("attachment", {}).get("payload", {})
        result.append(payload.get("text") or (payload.get("elements") or [{}])[0].get("title"))
    return result


def reply_ids(request: RecordedRequest) -> list[tuple[str, str]]:
    """``(title, payload)`` of every tappable option in one send, for any channel."""
    body = request.json
    if body.get("messaging_product") == "whatsapp":
        interactive = body.get("interactive", {})
        if interactive.get("type") == "button":
            return [(b["reply"]["title"], b["reply"]["id"]) for b in interactive["action"]["buttons"]]
        return [(r["title"], r["id"]) for s in interactive["action"]["sections"] for r in s["rows"]]
    message = body["message"]
    if "quick_replies" in message:
        return [(q["title"], q["payload"]) for q in message["quick_replies"]]
    payload = message["attachment"]["payload"]
    buttons = payload.get("buttons") or [b for e in payload.get("elements", []) for b in e.get("buttons", [])]
    return [(b["title"], b["payload"]) for b in buttons if b["type"] == "postback"]


def deep(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)
