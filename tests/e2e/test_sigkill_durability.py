"""DESIGN invariant 2, acknowledged means durable, with ``kill -9`` and a real server.

Inbound: threads stream a few hundred signed deliveries (Messenger and WhatsApp texts, some
batched with several events, some with a forged signature) while the server is SIGKILLed and
restarted on the same data directory and port. A delivery that met a connection error is sent
again until it is acknowledged, as Meta retries; a sample of acknowledged ones is sent a second
time. Afterwards every acknowledged event is in the inbox exactly once and nothing else is.

Outbound: agent replies are queued, the server is SIGKILLed with sends in flight (the Graph
stand-in holds its answers) and replies still waiting behind them, and restarted. A waiting
reply is sent exactly once. An in-flight send is *in doubt*: Meta may have accepted it.
If an echo (Messenger ``metadata``) or a status (WhatsApp ``biz_opaque_callback_data``)
carrying ``aat:<message id>`` arrives within ``AAT_SEND_IN_DOUBT_GRACE_SECONDS``, the send is
settled and not repeated. Without one it is sent again after the grace period: outbound
delivery to Meta is at-least-once, and the inbox still holds the message once.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Appliance, Appliances, json_dumps, signed, wait_for
from tests.e2e.payloads import (
    messenger_body,
    messenger_echo,
    messenger_text,
    whatsapp_body,
    whatsapp_status,
    whatsapp_text,
)
from tests.standins.graph_api import GraphStandIn, RecordedRequest, Scripted

# --- inbound: streaming through a SIGKILL ---------------------------------------------------

PAGE_ID = "105000000000001"
WABA_ID = "205000000000001"
PHONE_NUMBER_ID = "305000000000001"
PSIDS = [f"2460005550{i:06d}" for i in range(6)]
WA_IDS = [f"99559900{i:04d}" for i in range(6)]
DELIVERIES = 300
WORKERS = 4
DUPLICATES = 40
FORGED_EVERY = 29


@dataclass(frozen=True)
class Delivery:
    index: int
    body: bytes
    events: dict[str, str]  # mid / wamid -> text
    forged: bool = False


def _delivery(i: int) -> Delivery:
    """Delivery ``i``: one of four shapes, every event id and text unique."""
    def text(j: int) -> str:
        return f"stream {i}.{j} ✓ Ünïcödé"

    shape = i % 4
    if shape == 0:  # one Messenger text
        events = {f"m_stream_{i}_0": text(0)}
        body = messenger_body(PAGE_ID, [messenger_text(PAGE_ID, PSIDS[i % 6], f"m_stream_{i}_0", text(0))])
    elif shape == 1:  # one WhatsApp text
        events = {f"wamid.STREAM{i}x0": text(0)}
        wa_id = WA_IDS[i % 6]
        body = whatsapp_body(WABA_ID, PHONE_NUMBER_ID, contacts=[(wa_id, f"Contact {i % 6}")],
                             messages=[whatsapp_text(wa_id, f"wamid.STREAM{i}x0", text(0))])
    elif shape == 2:  # Messenger, batched: two entries, three events
        mids = [f"m_stream_{i}_{j}" for j in range(3)]
        events = {mid: text(j) for j, mid in enumerate(mids)}
        body = messenger_body(
            PAGE_ID,
            [messenger_text(PAGE_ID, PSIDS[i % 6], mids[0], text(0)),
             messenger_text(PAGE_ID, PSIDS[(i + 1) % 6], mids[1], text(1))],
            [messenger_text(PAGE_ID, PSIDS[(i + 2) % 6], mids[2], text(2))],
        )
    else:  # WhatsApp, batched: three messages from two contacts
        wamids = [f"wamid.STREAM{i}x{j}" for j in range(3)]
        events = {wamid: text(j) for j, wamid in enumerate(wamids)}
        first, second = WA_IDS[i % 6], WA_IDS[(i + 3) % 6]
        body = whatsapp_body(
            WABA_ID, PHONE_NUMBER_ID, contacts=[(first, "First"), (second, "Second")],
            messages=[whatsapp_text(first, wamids[0], text(0)), whatsapp_text(second, wamids[1], text(1)),
                      whatsapp_text(first, wamids[2], text(2))],
        )
    return Delivery(i, json_dumps(body, ascii_only=i % 2 == 0), events, forged=i % FORGED_EVERY == 7)


@dataclass
class Stream:
    """Posts deliveries from several threads; a connection error means "not acknowledged",
    and the delivery is posted again (as Meta retries) until the server answers."""

    app: Appliance
    deliveries: list[Delivery]
    acked: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    retried: set[int] = field(default_factory=set)
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._todo: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        for delivery in self.deliveries:
            self._todo.put(delivery)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "the stream did not finish"

    def _work(self) -> None:
        with httpx.Client(base_url=self.app.base_url, timeout=10.0) as client:
            while True:
                try:
                    delivery = self._todo.get_nowait()
                except queue.Empty:
                    return
                self._post_until_answered(client, delivery)

    def _post_until_answered(self, client: httpx.Client, delivery: Delivery) -> None:
        secret = "not-the-app-secret" if delivery.forged else None
        headers = signed(delivery.body, secret) if secret else signed(delivery.body)
        deadline = time.monotonic() + 30
        while True:
            try:
                response = client.post("/webhooks/meta", content=delivery.body, headers=headers)
            except httpx.TransportError:
                with self._lock:
                    self.transport_errors += 1
                    self.retried.add(delivery.index)
                if time.monotonic() > deadline:
                    with self._lock:
                        self.unexpected.append(f"delivery {delivery.index}: no answer for 30 s")
                    return
                time.sleep(0.02)
                continue
            expected = 403 if delivery.forged else 200
            with self._lock:
                if response.status_code != expected:
                    self.unexpected.append(f"delivery {delivery.index}: {response.status_code}")
                elif delivery.forged:
                    self.refused.add(delivery.index)
                else:
                    self.acked.add(delivery.index)
            return


@dataclass
class StreamOutcome:
    deliveries: list[Delivery]
    stream: Stream
    acked_at_kill: int
    duplicates_acked: int
    stored: Counter[str]
    stored_texts: dict[str, str]


@pytest.fixture(scope="module")
def streamed(module_appliances: Appliances, module_graph_api: GraphStandIn) -> StreamOutcome:
    app = module_appliances(module_graph_api)
    app.connect_channel(type="messenger", external_id=PAGE_ID, access_token="EAAGe2eStreamPage")
    app.connect_channel(type="whatsapp", external_id=PHONE_NUMBER_ID, waba_id=WABA_ID,
                        access_token="EAAGe2eStreamWaba")
    deliveries = [_delivery(i) for i in range(DELIVERIES)]
    stream = Stream(app, deliveries)
    stream.start()
    wait_for(lambda: len(stream.acked) >= DELIVERIES // 3, timeout=30, what="a third of the deliveries")
    app.kill()
    acked_at_kill = len(stream.acked)
    app.restart()
    stream.join(timeout=60)
    # Meta delivers some events again although we acknowledged them.
    sample = random.Random(2).sample(sorted(stream.acked), DUPLICATES)
    duplicates_acked = sum(app.post_webhook(deliveries[i].body).status_code == 200 for i in sample)
    app.wait_journal_settled()
    messages = [m for m in app.all_messages() if m["direction"] == "in"]
    return StreamOutcome(
        deliveries=deliveries,
        stream=stream,
        acked_at_kill=acked_at_kill,
        duplicates_acked=duplicates_acked,
        stored=Counter(m["external_id"] for m in messages),
        stored_texts={m["external_id"]: m["text"] for m in messages},
    )


def test_the_kill_landed_mid_stream(streamed: StreamOutcome) -> None:
    """The scenario is what it claims: the server died with deliveries still to come, some
    posts failed and were retried, and every delivery was finally answered."""
    assert DELIVERIES // 3 <= streamed.acked_at_kill < DELIVERIES - WORKERS
    assert streamed.stream.transport_errors > 0
    assert streamed.stream.retried
    assert streamed.stream.unexpected == []
    forged = {d.index for d in streamed.deliveries if d.forged}
    assert streamed.stream.refused == forged
    assert streamed.stream.acked == {d.index for d in streamed.deliveries} - forged
    assert streamed.duplicates_acked == DUPLICATES


def test_every_acknowledged_event_is_stored_exactly_once(streamed: StreamOutcome) -> None:
    acked_events = {eid for d in streamed.deliveries if d.index in streamed.stream.acked for eid in d.events}
    missing = acked_events - set(streamed.stored)
    repeated = {eid: n for eid, n in streamed.stored.items() if n != 1}
    assert missing == set()
    assert repeated == {}


def test_nothing_unacknowledged_is_stored(streamed: StreamOutcome) -> None:
    acked_events = {eid for d in streamed.deliveries if d.index in streamed.stream.acked for eid in d.events}
    forged_events = {eid for d in streamed.deliveries if d.forged for eid in d.events}
    assert set(streamed.stored) - acked_events == set()
    assert forged_events & set(streamed.stored) == set()


def test_every_stored_event_kept_its_text(streamed: StreamOutcome) -> None:
    sent = {eid: text for d in streamed.deliveries for eid, text in d.events.items()}
    wrong = {eid for eid, text in streamed.stored_texts.items() if sent.get(eid) != text}
    assert wrong == set()


# --- outbound: replies queued and in flight at the kill --------------------------------------

OUT_PAGE_ID = "106000000000001"
OUT_WABA_ID = "206000000000001"
OUT_PHONE_NUMBER_ID = "306000000000001"
PSID_ECHO = "2460006660000001"      # its in-flight reply is echoed after the restart
PSID_SILENT = "2460006660000002"    # its in-flight reply is never echoed
WA_ID = "995599660001"              # its in-flight reply gets a WhatsApp status
GRACE_SECONDS = 4.0
HOLD_SECONDS = 10.0                 # the stand-in holds in-flight answers past the kill


def _slow_ok(asset: str, recipient: str) -> Scripted:
    """A success that the stand-in answers only after HOLD_SECONDS (the server is dead by then)."""
    if asset == OUT_PHONE_NUMBER_ID:
        body = {"messaging_product": "whatsapp", "contacts": [{"input": recipient, "wa_id": recipient}],
                "messages": [{"id": "wamid.HELD"}]}
    else:
        body = {"recipient_id": recipient, "message_id": "m_HELD"}
    return Scripted(status=200, body=json.dumps(body).encode(), delay=HOLD_SECONDS)


def _reference(request: RecordedRequest) -> str | None:
    body = request.json
    if body.get("messaging_product") == "whatsapp":
        return body.get("biz_opaque_callback_data")
    return (body.get("message") or {}).get("metadata")


@dataclass
class OutboxOutcome:
    app: Appliance
    graph: GraphStandIn
    ids: dict[str, str]           # role -> message id
    conversations: dict[str, str]  # role -> conversation id
    in_flight_at_kill: set[str]
    queued_at_kill: set[str]
    reported_at: float = 0.0       # when Meta's echo and status were posted (monotonic)

    def sends_of(self, role: str) -> list[RecordedRequest]:
        asset = OUT_PHONE_NUMBER_ID if role.endswith("_wa") else OUT_PAGE_ID
        return [r for r in self.graph.sends_to(asset) if _reference(r) == f"aat:{self.ids[role]}"]

    def message(self, role: str) -> dict[str, Any]:
        return self.app.message(self.conversations[role], self.ids[role])


@pytest.fixture(scope="module")
def outbox_crash(module_appliances: Appliances, request: pytest.FixtureRequest) -> OutboxOutcome:
    graph = GraphStandIn().start()  # its own, so message ids of other appliances cannot mix in
    request.addfinalizer(graph.stop)
    app = module_appliances(graph, AAT_SEND_IN_DOUBT_GRACE_SECONDS=str(GRACE_SECONDS))
    app.connect_channel(type="messenger", external_id=OUT_PAGE_ID, access_token="EAAGe2eOutboxPage")
    app.connect_channel(type="whatsapp", external_id=OUT_PHONE_NUMBER_ID, waba_id=OUT_WABA_ID,
                        access_token="EAAGe2eOutboxWaba")
    inbound = [
        messenger_body(OUT_PAGE_ID, [messenger_text(OUT_PAGE_ID, PSID_ECHO, "m_out_in_1", "Hi"),
                                     messenger_text(OUT_PAGE_ID, PSID_SILENT, "m_out_in_2", "Hello")]),
        whatsapp_body(OUT_WABA_ID, OUT_PHONE_NUMBER_ID, contacts=[(WA_ID, "Nino")],
                      messages=[whatsapp_text(WA_ID, "wamid.OUTIN1", "Gamarjoba")]),
    ]
    for body in inbound:
        assert app.post_webhook(json_dumps(body)).status_code == 200
    app.wait_journal_settled()
    conversation = {"echo": app.conversation_of(PSID_ECHO), "silent": app.conversation_of(PSID_SILENT),
                    "wa": app.conversation_of(WA_ID)}

    graph.fail_next(OUT_PAGE_ID, _slow_ok(OUT_PAGE_ID, PSID_ECHO), _slow_ok(OUT_PAGE_ID, PSID_SILENT))
    graph.fail_next(OUT_PHONE_NUMBER_ID, _slow_ok(OUT_PHONE_NUMBER_ID, WA_ID))
    ids: dict[str, str] = {}
    conversations: dict[str, str] = {}
    for role, key in (("in_flight_echo", "echo"), ("in_flight_silent", "silent"), ("in_flight_wa", "wa")):
        ids[role] = app.reply(conversation[key], f"first reply ({role})")["id"]
        conversations[role] = conversation[key]
    outcome = OutboxOutcome(app, graph, ids, conversations, set(), set())
    in_flight = ("in_flight_echo", "in_flight_silent", "in_flight_wa")
    wait_for(lambda: all(outcome.sends_of(role) for role in in_flight), what="three sends in flight")
    # Queued behind the in-flight send of their conversation: a conversation sends one
    # message at a time, in order, so these cannot have been claimed before the kill.
    for role, key in (("queued_behind_echo", "echo"), ("queued_behind_wa", "wa")):
        ids[role] = app.reply(conversation[key], f"second reply ({role})")["id"]
        conversations[role] = conversation[key]
    outcome.queued_at_kill = {"queued_behind_echo", "queued_behind_wa"}
    assert all(outcome.message(role)["status"] == "queued" for role in outcome.queued_at_kill)
    outcome.in_flight_at_kill = {role for role in in_flight if outcome.message(role)["status"] == "queued"}
    app.kill()
    assert not any(outcome.sends_of(role) for role in outcome.queued_at_kill)

    app.restart()
    app.wait_open()  # the grace period runs from the sender's start, with the full app
    # Meta reports two of the in-flight sends within the grace period.
    echo = messenger_body(OUT_PAGE_ID, [messenger_echo(OUT_PAGE_ID, PSID_ECHO, "m_echoed_1", "first reply",
                                                       metadata=f"aat:{ids['in_flight_echo']}")])
    status = whatsapp_body(OUT_WABA_ID, OUT_PHONE_NUMBER_ID, statuses=[
        whatsapp_status("wamid.SETTLED1", "sent", WA_ID, callback=f"aat:{ids['in_flight_wa']}")])
    outcome.reported_at = time.monotonic()
    for body in (echo, status):
        assert app.post_webhook(json_dumps(body)).status_code == 200
    app.wait_journal_settled()
    app.wait_outbox_empty(timeout=GRACE_SECONDS + 15)
    return outcome


def test_the_kill_caught_sends_in_flight_and_replies_queued(outbox_crash: OutboxOutcome) -> None:
    assert outbox_crash.in_flight_at_kill == {"in_flight_echo", "in_flight_silent", "in_flight_wa"}
    assert outbox_crash.queued_at_kill == {"queued_behind_echo", "queued_behind_wa"}


@pytest.mark.parametrize("role", ["queued_behind_echo", "queued_behind_wa"])
def test_a_reply_queued_at_the_kill_is_sent_exactly_once(outbox_crash: OutboxOutcome, role: str) -> None:
    assert len(outbox_crash.sends_of(role)) == 1
    assert outbox_crash.message(role)["status"] == "sent"


@pytest.mark.parametrize("role", ["in_flight_echo", "in_flight_wa"])
def test_an_in_flight_send_settled_by_its_echo_or_status_is_not_sent_again(
    outbox_crash: OutboxOutcome, role: str
) -> None:
    assert len(outbox_crash.sends_of(role)) == 1
    message = outbox_crash.message(role)
    assert message["status"] == "sent"
    assert message["external_id"] == ("wamid.SETTLED1" if role == "in_flight_wa" else "m_echoed_1")


def test_an_in_flight_send_without_echo_is_sent_again_after_the_grace_period(
    outbox_crash: OutboxOutcome,
) -> None:
    """At-least-once towards Meta: nothing told us whether the first request arrived."""
    sends = outbox_crash.sends_of("in_flight_silent")
    assert len(sends) == 2
    assert sends[1].at - sends[0].at >= GRACE_SECONDS
    assert outbox_crash.message("in_flight_silent")["status"] == "sent"


def test_the_inbox_holds_each_reply_once(outbox_crash: OutboxOutcome) -> None:
    app = outbox_crash.app
    for key in set(outbox_crash.conversations.values()):
        outbound = [m["id"] for m in app.messages(key) if m["direction"] == "out"]
        expected = [outbox_crash.ids[r] for r, c in outbox_crash.conversations.items() if c == key]
        assert sorted(outbound, key=int) == sorted(expected, key=int)


@pytest.mark.parametrize("role", ["queued_behind_echo", "queued_behind_wa"])
def test_a_reply_behind_a_settled_send_goes_out_without_waiting_for_the_grace_period(
    outbox_crash: OutboxOutcome, role: str
) -> None:
    # Its channel had sends in doubt, so its rate limiter counts every slot taken for a second
    # after the restart (appliance.outbox.ratelimit); then it goes, well before the grace.
    waited = outbox_crash.sends_of(role)[0].at - outbox_crash.reported_at
    assert waited < GRACE_SECONDS / 2
