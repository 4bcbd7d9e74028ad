"""What a webhook delivery sends, and how it is signed.

Body (JSON)::

    {"id": "evt_42", "type": "message.created", "created_at": "2026-11-26T19:18:07.123Z",
     "delivery_id": "7", "data": {"message_id": "12", "conversation_id": "3", "message": {...}}}

``id`` names the event: it is the same on every attempt and replay, so receivers dedupe on it
(delivery is at least once). ``data`` holds the event's ids (as strings, like the API) and the
resource as the JSON API shows it *at the time of the attempt* (``message``, ``conversation``,
``contact``); a resource that no longer exists (an erased contact) is left out, the ids stay.

Headers::

    X-AAT-Signature: t=1764184687,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
    X-AAT-Event: message.created
    X-AAT-Event-Id: evt_42
    X-AAT-Delivery: 7
    X-AAT-Attempt: 1

``v1`` is the hex HMAC-SHA256, keyed with the subscription's secret (the whole ``whsec_...``
string, UTF-8), of ``"<t>." + body`` (the raw bytes). Receivers recompute it over the raw
body, compare in constant time and refuse a ``t`` older than five minutes (replay protection);
``t`` is the time of the attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlite_utils import Database

from appliance.contacts.routes import public_contact
from appliance.contacts.store import get_contact
from appliance.errors import NotFound
from appliance.inbox.routes import public_conversation
from appliance.inbox.store import get_conversation, get_message, public_message

__all__ = ["build_body", "sign", "verify", "new_secret", "SIGNATURE_HEADER", "SECRET_PREFIX"]

SIGNATURE_HEADER = "X-AAT-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _resource(db: Database, event_type: str, refs: dict[str, int]) -> dict[str, Any]:
    """The event's resource as the API shows it, or nothing when it is gone."""
    try:
        if event_type.startswith("message.") and "message_id" in refs:
            return {"message": public_message(get_message(db, refs["message_id"]))}
        if event_type.startswith("conversation.") and "conversation_id" in refs:
            return {"conversation": public_conversation(get_conversation(db, refs["conversation_id"]))}
        if event_type in ("contact.created", "contact.updated", "flow.completed") and "contact_id" in refs:
            return {"contact": public_contact(get_contact(db, refs["contact_id"]))}
    except NotFound:
        return {}
    return {}


def build_body(db: Database, delivery: dict[str, Any]) -> bytes:
    """The JSON body of one attempt of ``delivery`` (a ``webhook_deliveries`` row). A read."""
    refs = json.loads(delivery["refs"])
    data: dict[str, Any] = {name: str(value) for name, value in sorted(refs.items())}
    data.update(_resource(db, delivery["event_type"], refs))
    body = {
        "id": f"evt_{delivery['event_id']}",
        "type": delivery["event_type"],
        "created_at": delivery["occurred_at"],
        "delivery_id": str(delivery["id"]),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-AAT-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (documentation and tests): check ``header`` against ``body``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
