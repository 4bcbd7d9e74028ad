"""A broadcast survives ``kill -9`` of a real ``aat-appliance serve``: nobody gets a second copy
and nobody is missed.

150 WhatsApp contacts write in (signed webhooks); a text broadcast to all of them starts at
25 msg/s (the number's configured limit, which the Graph stand-in also enforces with 130429).
After 40 sends have reached the stand-in, the server is SIGKILLed mid-send and restarted on the
same data directory. Meta reports every message it accepted with a ``sent`` status carrying
``biz_opaque_callback_data`` (``aat:<message id>``), as it does for every accepted send; the
appliance posts them again within the in-doubt grace period. So a send that was in flight at
the kill (accepted by Meta, its answer lost) is settled by its status instead of repeated, and
the broadcast carries on with the recipients not reached yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Appliance, Appliances, json_dumps, wait_for
from tests.e2e.payloads import whatsapp_body, whatsapp_status, whatsapp_text
from tests.standins.graph_api import GraphStandIn

WABA_ID = "206000000000001"
PHONE_ID = "306000000000001"
CONTACTS = [f"99557700{i:04d}" for i in range(150)]
RATE = 25
KILL_AFTER = 40
GRACE_SECONDS = 5


@dataclass
class Outcome:
    app: Appliance
    graph: GraphStandIn
    broadcast_id: str
    sent_before_kill: int
    pending_at_kill: int
    final: dict[str, Any]

    def recipients(self) -> list[str]:
        return [r.json["to"] for r in self.graph.sends_to(PHONE_ID)]


def _report_accepted(app: Appliance, graph: GraphStandIn) -> None:
    """Meta's ``sent`` status for every send it accepted so far (none was refused: the limiter
    kept the rate), in batches like Meta's deliveries."""
    statuses = [whatsapp_status(f"wamid.KILL{i}", "sent", r.json["to"], callback=r.json["biz_opaque_callback_data"])
                for i, r in enumerate(graph.sends_to(PHONE_ID))]
    for start in range(0, len(statuses), 50):
        body = whatsapp_body(WABA_ID, PHONE_ID, statuses=statuses[start:start + 50])
        assert app.post_webhook(json_dumps(body)).status_code == 200


@pytest.fixture(scope="module")
def killed(module_appliances: Appliances) -> Any:
    graph = GraphStandIn(rate_limits={PHONE_ID: RATE}).start()
    try:
        app = module_appliances(graph, AAT_SEND_IN_DOUBT_GRACE_SECONDS=str(GRACE_SECONDS))
        app.connect_channel(type="whatsapp", external_id=PHONE_ID, access_token="EAAG-kill", waba_id=WABA_ID,
                            rate_limit=RATE)
        for start in range(0, len(CONTACTS), 50):
            batch = CONTACTS[start:start + 50]
            body = whatsapp_body(WABA_ID, PHONE_ID, contacts=[(wa, f"P{wa[-4:]} Kill") for wa in batch],
                                 messages=[whatsapp_text(wa, f"wamid.IN{wa}", "hello") for wa in batch])
            assert app.post_webhook(json_dumps(body)).status_code == 200
        app.wait_journal_settled()

        created = app.api.post("/api/v1/broadcasts", json={
            "name": "Kill -9 sale", "audience": {"channels": ["whatsapp"]},
            "message": {"text": "Hi {{contact.first_name|there}}, the sale is on"}})
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        assert app.api.post(f"/api/v1/broadcasts/{broadcast_id}/start").status_code == 200
        wait_for(lambda: len(graph.sends_to(PHONE_ID)) >= KILL_AFTER, timeout=30, what=f"{KILL_AFTER} sends")
        app.kill()
        sent_before_kill = len(graph.sends_to(PHONE_ID))

        app.restart()
        _report_accepted(app, graph)
        pending = app.api.get(f"/api/v1/broadcasts/{broadcast_id}").json()["progress"]["pending"]

        def completed() -> dict[str, Any] | None:
            body = app.api.get(f"/api/v1/broadcasts/{broadcast_id}").json()
            return body if body["status"] == "completed" else None

        final = wait_for(completed, timeout=60, interval=0.2, what="the broadcast to complete")
        yield Outcome(app, graph, broadcast_id, sent_before_kill, pending, final)
    finally:
        graph.stop()


def test_the_kill_landed_mid_send(killed: Outcome) -> None:
    assert KILL_AFTER <= killed.sent_before_kill < len(CONTACTS) and killed.pending_at_kill > 0


def test_every_contact_got_exactly_one_copy(killed: Outcome) -> None:
    counts = Counter(killed.recipients())
    assert (set(counts), max(counts.values())) == (set(CONTACTS), 1)


def test_the_counts_add_up_after_the_restart(killed: Outcome) -> None:
    assert killed.final["counts"] == {"total": 150, "sent": 150, "delivered": 0, "read": 0, "failed": 0,
                                      "skipped": 0}


def test_the_rate_held_across_the_restart(killed: Outcome) -> None:
    assert killed.graph.violations == []


def test_each_message_is_in_the_inbox_once(killed: Outcome) -> None:
    texts = [m for m in killed.app.all_messages() if m["direction"] == "out"]
    assert sorted(m["status"] for m in texts) == ["sent"] * 150
    assert Counter(m["text"].split(",")[0] for m in texts) == Counter(f"Hi P{wa[-4:]}" for wa in CONTACTS)
