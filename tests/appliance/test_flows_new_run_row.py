"""A run started by a message is written once, as its first engine step leaves it
(``store.reserve_run`` + ``insert_run``): the row, its id (AUTOINCREMENT's, never a deleted
run's), the step log and the ``flow.completed`` event are what creating it and then saving it
gave, through a ``goto_flow`` into a second run that waits for a tap."""

from __future__ import annotations

from typing import Any

from appliance.channels.events import ContactRef
from appliance.connections.store import connect_channel
from appliance.contacts import store as contacts
from appliance.flows import store as flows
from appliance.flows.runner import InboundFacts, Snapshot, on_inbound
from appliance.inbox import store as inbox
from appliance.store.rows import many
from appliance.store.workspace import Workspace

NOW = "2026-11-27T09:00:00.000Z"
MAIN = {"schema": "aat.flow/v1", "name": "Main", "triggers": [{"type": "default"}], "start": "hello",
        "steps": {"hello": {"type": "message", "text": "Hi {{contact.first_name|there}}", "next": "go"},
                  "go": {"type": "goto_flow", "flow": "Second"}}}
SECOND = {"schema": "aat.flow/v1", "name": "Second", "triggers": [{"type": "keyword", "keywords": ["zzz"]}],
          "start": "ask", "steps": {"ask": {"type": "message", "text": "Yes?",
                                            "quick_replies": [{"title": "Yes", "next": "bye"}]},
                                    "bye": {"type": "end"}}}


def test_a_new_run_is_written_as_its_first_step_leaves_it(workspace: Workspace) -> None:
    def run(db: Any) -> dict[str, Any]:
        channel_id = connect_channel(db, channel_type="messenger", external_id="page-1", token_enc="t", name=None,
                                     waba_id=None, page_id=None, rate_limit=None, now=NOW)["id"]
        ids = {}
        for document in (MAIN, SECOND):
            ids[document["name"]] = flows.create_flow(db, document, NOW)["id"]
            flows.publish(db, int(ids[document["name"]]), document, NOW)
        contact_id, _ = contacts.upsert_contact(db, channel_id, ContactRef(external_id="psid", name="Ana Lima"), NOW)
        conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, NOW)
        view, _ = flows.contact_view(db, contact_id)
        # Runs 1-3 existed and the last two were erased: the next run is 4, not 2.
        for _ in range(3):
            old = flows.create_run(db, flow_id=int(ids["Main"]), version=1, contact_id=contact_id, trigger="x",
                                   now=NOW, contact=view)
        db.execute("DELETE FROM flow_runs WHERE id > 1")
        before = int(db.execute("SELECT COALESCE(max(id), 0) FROM events").fetchone()[0])
        facts = InboundFacts(contact_id=contact_id, conversation_id=conversation_id, channel="messenger",
                             kind="text", text="hello", payload={}, new_contact=False, occurred_at=NOW,
                             channel_id=channel_id, conversation_announced=True)
        followups = on_inbound(db, facts, NOW, seed=5, snapshot=Snapshot(db))
        return {
            "old": old.run_id,
            "runs": many(db, "SELECT * FROM flow_runs WHERE id > 1 ORDER BY id"),
            "steps": [tuple(r.values()) for r in many(
                db, "SELECT run_id, step, event FROM flow_step_events ORDER BY id")],
            "events": [(e["type"], e["run_id"]) for e in many(
                db, "SELECT type, run_id FROM events WHERE id > ? ORDER BY id", [before])],
            "queued": followups.queued_messages,
            "flows": ids,
        }

    got = workspace.gateway.write_sync(run)
    main, second = int(got["flows"]["Main"]), int(got["flows"]["Second"])
    assert got["old"] == 3
    common = {"retries": 0, "turns": 0, "timer": None, "origin_comment": None, "started_at": NOW, "updated_at": NOW}
    assert got["runs"] == [
        {"id": 4, "flow_id": main, "version": 1, "status": "completed", "trigger": "default", "step": "go",
         "waiting": None, "ended_at": NOW, **common, "contact_id": got["runs"][0]["contact_id"]},
        {"id": 5, "flow_id": second, "version": 1, "status": "active", "trigger": "goto_flow", "step": "ask",
         "waiting": "reply", "ended_at": None, **common, "contact_id": got["runs"][0]["contact_id"]},
    ]
    assert got["steps"] == [(4, "hello", "entered"), (4, "hello", "completed"), (4, "go", "entered"),
                            (4, "go", "completed"), (5, "ask", "entered")]
    assert got["events"] == [("message.created", None), ("flow.completed", 4), ("message.created", None)]
    assert got["queued"] == 2
