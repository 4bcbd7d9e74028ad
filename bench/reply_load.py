"""reply.py's load: the pre-signed WhatsApp deliveries and the closed-loop senders.

``build_events`` makes one delivery per new contact, as Meta sends them, signed with
``APP_SECRET``; both sides get exactly those bytes. The deliveries alternate between the
``PHONE_NUMBER_IDS`` of one WhatsApp Business Account: Meta lets one number send at most 1,000
messages a second (its highest tier), and the appliance's limiter keeps to that, so with one
number a fast machine measures Meta's ceiling instead of the bots (BENCHMARKS.md).

``Driver`` runs ``concurrency`` senders on keep-alive connections in this process's event loop,
next to the Graph sink, so both ends of an event (delivery written, reply received) are read from
one clock (``time.monotonic``). With pace ``reply`` a sender posts its next delivery once the sink
has received the reply to the previous one; with ``ack`` as soon as the 200 arrived.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from events import PHONE_NUMBER_ID, WABA_ID, http_request
from graph_sink import GraphSink

__all__ = [
    "ACCESS_TOKEN",
    "APP_SECRET",
    "FLOW",
    "PHONE_NUMBER_IDS",
    "WABA_ID",
    "Driver",
    "Event",
    "Load",
    "Sent",
    "build_events",
]

APP_SECRET = "bench-app-secret-0123456789abcdef"
PHONE_NUMBER_IDS = (PHONE_NUMBER_ID, "109876543210988")  # two numbers of the WABA, alternating
ACCESS_TOKEN = "EAAbenchACCESSTOKEN0123456789"

FLOW = {
    "schema": "aat.flow/v1",
    "name": "Echo",
    "triggers": [{"type": "default", "channels": ["whatsapp"]}],
    "start": "reply",
    "steps": {"reply": {"type": "message", "text": "Hi {{contact.first_name|there}}, you said something!"}},
}

_FIRST = ["Nino", "Giorgi", "Ana", "Luka", "Mariam", "Davit", "ნინო", "გიორგი", "Sofia", "Levan",
          "Tamar", "Irakli", "Elene", "Nika", "Salome", "Zurab"]
_LAST = ["Beridze", "Kapanadze", "Gelashvili", "Lomidze", "მაისურაძე", "Tsiklauri", "Abashidze"]
_TEXTS = ["Hello, are you open on Sunday?", "Do you ship to Tbilisi?", "How much is the large size?",
          "გამარჯობა! Is the blue one still available?", "Thanks, see you tomorrow 👋"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    wa_id: str
    bsuid: str
    phone_number_id: str  # the business number it was sent to: the reply must come from it
    expected: str  # the reply text both bots must send
    request: bytes  # the complete signed HTTP request


def build_events(round_no: int, count: int, start: int, sent_at: int) -> list[Event]:
    """``count`` WhatsApp text deliveries, one per new contact, as Meta sends them (compact JSON,
    non-ASCII escaped, ``contacts[].user_id`` = the BSUID), signed with the app secret."""
    secret = APP_SECRET.encode()
    out = []
    for seq in range(start, start + count):
        first = _FIRST[seq % len(_FIRST)]
        name = first if seq % 5 == 0 else f"{first} {_LAST[seq % len(_LAST)]}"
        wa_id = f"9955{round_no:02d}{seq:06d}"
        bsuid = f"GE.4{round_no:03d}{seq:016d}"
        number = PHONE_NUMBER_IDS[seq % len(PHONE_NUMBER_IDS)]
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{
                "id": WABA_ID,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
                        "contacts": [{"profile": {"name": name}, "wa_id": wa_id, "user_id": bsuid}],
                        "messages": [{
                            "id": f"wamid.HBgMBENCH{round_no:02d}{seq:08d}FQIAEhgU",
                            "timestamp": str(sent_at),
                            "from": wa_id,
                            "type": "text",
                            "text": {"body": _TEXTS[seq % len(_TEXTS)]},
                        }],
                    },
                }],
            }],
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        out.append(Event(seq, wa_id, bsuid, number, f"Hi {first}, you said something!", http_request(body, secret)))
    return out


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Sent:
    sent: float  # time.monotonic() just before the request was written
    sent_wall: float  # time.time() at the same moment (to compare with the database's timestamps)
    acked: float = math.nan
    status: int = 0


@dataclass
class Load:
    events: list[Event]
    sent: dict[int, Sent] = field(default_factory=dict)
    timeouts: int = 0
    transport_errors: list[str] = field(default_factory=list)


class Driver:
    """``concurrency`` senders and the sink, in this process's event loop."""

    def __init__(self, sink: GraphSink, port: int, concurrency: int, pace: str, reply_timeout: float) -> None:
        self.sink = sink
        self.port = port
        self.concurrency = concurrency
        self.pace = pace
        self.reply_timeout = reply_timeout
        self._waiting: dict[str, asyncio.Future[float]] = {}
        sink.on_reply = self._on_reply

    def _on_reply(self, to: str, at: float) -> None:
        future = self._waiting.pop(to, None)
        if future is not None and not future.done():
            future.set_result(at)

    async def run(self, events: list[Event]) -> Load:
        load = Load(events)
        queue = iter(events)  # shared: asyncio switches only at awaits, so next() is safe
        await asyncio.gather(*(self._sender(queue, load) for _ in range(self.concurrency)))
        return load

    async def _sender(self, queue: Any, load: Load) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for event in queue:
                future: asyncio.Future[float] = loop.create_future()
                self._waiting[event.wa_id] = self._waiting[event.bsuid] = future
                for attempt in (1, 2):
                    record = Sent(time.monotonic(), time.time())
                    load.sent[event.seq] = record
                    writer.write(event.request)
                    try:
                        record.status = await _read_status(reader)
                        break
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        # A keep-alive connection the server closed while this sender waited
                        # for a reply (uvicorn closes idle ones after 5 s): post again on a new
                        # connection, as Meta would. The delivery's wamid makes a repeat harmless.
                        load.transport_errors.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                if not record.status:
                    continue
                record.acked = time.monotonic()
                if record.status != 200 or self.pace != "reply":
                    continue
                try:
                    async with asyncio.timeout(self.reply_timeout):
                        await future
                except TimeoutError:
                    load.timeouts += 1
        finally:
            writer.close()

    async def wait_answered(self, load: Load, timeout: float) -> None:
        """Until every acknowledged event has a reply, or no new reply came for ``timeout`` s
        (with ``--pace ack`` a backlog may still be draining when the last 200 arrives)."""
        expected = [e for e in load.events if e.seq in load.sent and load.sent[e.seq].status == 200]
        seen, deadline = -1, time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = sum(1 for e in expected if e.wa_id in self.sink.replies or e.bsuid in self.sink.replies)
            if answered == len(expected):
                return
            if answered != seen:
                seen, deadline = answered, time.monotonic() + timeout
            await asyncio.sleep(0.05)

    def forget(self) -> None:
        self._waiting.clear()


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            raise ValueError("chunked response")
    if length:
        await reader.readexactly(length)
    return status

