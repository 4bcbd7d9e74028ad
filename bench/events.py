"""Realistic, unique, pre-signed Meta webhook deliveries for the benchmarks.

The shapes are those of ``tests/fixtures/meta/`` (Messenger and Instagram ``messaging`` entries,
WhatsApp Cloud API ``changes``), serialised the way Meta sends them: compact JSON with non-ASCII
escaped (``\\u10d2``), signed with ``X-Hub-Signature-256`` over those exact bytes. Every delivery
carries a message id (``mid``/``wamid``) that no other delivery of the run carries, so nothing
is deduplicated away. Senders come from a fixed pool, so contacts and conversations repeat the way
they do in real traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Iterator

__all__ = ["delivery", "deliveries", "sign", "http_request"]

PAGE_ID = "112233445566778"
INSTAGRAM_ID = "17841455566677788"
WABA_ID = "203040506070809"
PHONE_NUMBER_ID = "109876543210987"

_TEXTS = [
    "Hello, are you open on Sunday?",
    "Do you ship to Tbilisi?",
    "How much is the large size?",
    "გამარჯობა! Is the blue one still available?",
    "Can I change my order #4821 to two items?",
    "Thanks, see you tomorrow 👋",
    "What are your opening hours during the holidays?",
    "Is delivery free above 50 GEL?",
]
_SENDERS = 2000
# This run's start: the appliance counts a contact's 24-hour messaging window from the message's
# own timestamp, as Meta does, so deliveries stamped at a fixed past time would get no reply.
_BASE_MS = int(time.time() * 1000)


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _messaging(obj: str, asset: str, sender: str, mid: str, text: str, ts: int, quick: bool) -> dict:
    message: dict = {"mid": mid, "text": text}
    if quick:
        message["quick_reply"] = {"payload": "SIZE_LARGE"}
    return {
        "object": obj,
        "entry": [{
            "id": asset,
            "time": ts,
            "messaging": [{
                "sender": {"id": sender},
                "recipient": {"id": asset},
                "timestamp": ts,
                "message": message,
            }],
        }],
    }


def _whatsapp(wa_id: str, wamid: str, text: str, ts: int) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
                    "contacts": [{"profile": {"name": "Giorgi"}, "wa_id": wa_id}],
                    "messages": [{
                        "id": wamid,
                        "timestamp": str(ts // 1000),
                        "from": wa_id,
                        "type": "text",
                        "text": {"body": text},
                    }],
                },
            }],
        }],
    }


def delivery(seq: int, run_tag: str, rng: random.Random) -> bytes:
    """Delivery number ``seq``: 40% Messenger, 20% Instagram, 40% WhatsApp text messages."""
    ts = _BASE_MS + seq * 37
    text = rng.choice(_TEXTS)
    sender = rng.randrange(_SENDERS)
    kind = rng.random()
    unique = f"{run_tag}{seq:09d}"
    if kind < 0.4:
        payload = _messaging("page", PAGE_ID, f"24600{sender:011d}", f"m_{unique}", text, ts, rng.random() < 0.1)
    elif kind < 0.6:
        payload = _messaging("instagram", INSTAGRAM_ID, f"61200{sender:011d}", f"aWdf{unique}", text, ts, False)
    else:
        wa_id = f"9955{sender:08d}"
        payload = _whatsapp(wa_id, f"wamid.HBgL{unique}", text, ts)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def deliveries(count: int, run_tag: str, seed: int = 0) -> Iterator[bytes]:
    rng = random.Random(f"{seed}:{run_tag}")
    for seq in range(count):
        yield delivery(seq, run_tag, rng)


def http_request(body: bytes, secret: bytes, path: str = "/webhooks/meta") -> bytes:
    """A complete HTTP/1.1 request, as Meta's delivery would arrive (Host is not checked)."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        "Host: bench\r\n"
        "User-Agent: facebookexternalua\r\n"
        "Content-Type: application/json\r\n"
        f"X-Hub-Signature-256: {sign(body, secret)}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body
