"""Meta webhook bodies for the end-to-end tests, in the shapes of tests/fixtures/meta/.

Timestamps are "now", so replies fall inside the 24-hour window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "messenger_text",
    "messenger_echo",
    "messenger_body",
    "whatsapp_text",
    "whatsapp_status",
    "whatsapp_body",
]


def _now_ms() -> int:
    return int(time.time() * 1000)


def messenger_text(page_id: str, psid: str, mid: str, text: str) -> dict[str, Any]:
    """One ``messaging`` item: a text from the contact ``psid`` to the Page."""
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": _now_ms(),
        "message": {"mid": mid, "text": text},
    }


def messenger_echo(page_id: str, psid: str, mid: str, text: str, metadata: str | None) -> dict[str, Any]:
    """One ``messaging`` item: Meta echoing a message the Page sent (``metadata`` is ours)."""
    message: dict[str, Any] = {"mid": mid, "text": text, "is_echo": True, "app_id": 123456789}
    if metadata is not None:
        message["metadata"] = metadata
    return {"sender": {"id": page_id}, "recipient": {"id": psid}, "timestamp": _now_ms(), "message": message}


def messenger_body(page_id: str, *entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``page`` delivery; each argument is one entry's ``messaging`` list (batching)."""
    return {
        "object": "page",
        "entry": [{"id": page_id, "time": _now_ms(), "messaging": items} for items in entries],
    }


def whatsapp_text(wa_id: str, wamid: str, text: str) -> dict[str, Any]:
    return {"id": wamid, "timestamp": str(int(time.time())), "from": wa_id, "type": "text",
            "text": {"body": text}}


def whatsapp_status(wamid: str, status: str, recipient_id: str, callback: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                            "recipient_id": recipient_id}
    if callback is not None:
        item["biz_opaque_callback_data"] = callback
    return item


def whatsapp_body(
    waba_id: str,
    phone_number_id: str,
    *,
    messages: Sequence[dict[str, Any]] = (),
    contacts: Sequence[tuple[str, str]] = (),
    statuses: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A ``whatsapp_business_account`` delivery: one change with ``messages`` (from
    ``contacts``, pairs of wa_id and profile name) and/or ``statuses``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts]
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}]}
