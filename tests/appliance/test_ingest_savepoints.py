"""All or nothing per event and per delivery, as the journal processor applies deliveries
(``appliance.ingest.processor._apply_batch``): a chunk is first applied in one savepoint; if
anything in it fails, again with a savepoint per delivery (a delivery of one event shares it
with its event; one of several events gives each its own). A schema trigger (RAISE(ABORT))
makes one write fail at a chosen point; what is left in the workspace is then compared with
what must be."""

from __future__ import annotations

import copy
import json
from typing import Any

from appliance.connections.store import connect_channel
from appliance.flows import store as flows
from appliance.ingest import journal
from appliance.ingest.processor import JournalProcessor
from appliance.metrics import Metrics
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now
from tests.conftest import fixture_json

FLOW = {
    "schema": "aat.flow/v1", "name": "Echo", "start": "reply",
    "triggers": [{"type": "default", "channels": ["whatsapp"]}],
    "steps": {"reply": {"type": "message", "text": "Hi {{contact.first_name|there}}"}},
}
TABLES = ("contacts", "conversations", "messages", "outbox", "flow_runs", "flow_step_events", "events",
          "seen_events", "webhook_journal_contacts")


def _entry(n: int) -> dict[str, Any]:
    entry: dict[str, Any] = copy.deepcopy(fixture_json("whatsapp_text")["entry"][0])
    value = entry["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = f"99555577{n:04d}"
    value["contacts"][0].pop("user_id")
    value["messages"][0]["id"] = f"wamid.SAVEPOINT{n:06d}"
    return entry


def _delivery(*numbers: int) -> bytes:
    body = fixture_json("whatsapp_text")
    body["entry"] = [_entry(n) for n in numbers]
    return json.dumps(body).encode()


def _setup(db: Any) -> None:
    now = iso_now()
    connect_channel(db, channel_type="whatsapp", external_id="109876543210987", token_enc="unused",
                    name="t", waba_id="203040506070809", page_id=None, rate_limit=None, now=now)
    flows.publish(db, flows.create_flow(db, FLOW, now)["id"], FLOW, now)


def _counts(db: Any) -> dict[str, int]:
    return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


async def _process(workspace: Workspace, *bodies: bytes) -> list[dict[str, Any]]:
    now = iso_now()
    for body in bodies:
        workspace.gateway.write_sync(journal.append, body, now)
    await JournalProcessor(gateway=workspace.gateway, metrics=Metrics()).drain()
    return workspace.gateway.read_sync(lambda db: [dict(zip(("id", "state", "events", "error"), row, strict=True))
                                                   for row in db.execute(
        "SELECT id, state, events, error FROM webhook_journal ORDER BY id")])


async def test_a_single_event_that_fails_leaves_nothing_and_marks_its_row(workspace: Workspace) -> None:
    workspace.gateway.write_sync(_setup)
    before = workspace.gateway.read_sync(_counts)
    # Fails after the contact, conversation, message and its first event are written.
    workspace.gateway.write_sync(lambda db: db.execute(
        "CREATE TEMP TRIGGER fail_announce BEFORE INSERT ON main.events WHEN NEW.type = 'conversation.updated' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    rows = await _process(workspace, _delivery(1), _delivery(2))
    assert [(r["state"], r["error"]) for r in rows] == [
        ("failed", "event 0 (whatsapp): could not be stored (IntegrityError)")] * 2
    assert workspace.gateway.read_sync(_counts) == before  # nothing of either event, dedupe key not taken

    workspace.gateway.write_sync(lambda db: db.execute("DROP TRIGGER temp.fail_announce"))
    workspace.gateway.write_sync(journal.retry_failed)
    rows = await _process(workspace)
    assert [(r["state"], r["error"]) for r in rows] == [("processed", None)] * 2
    after = workspace.gateway.read_sync(_counts)
    assert after["messages"] - before["messages"] == 4  # each message and its reply


async def test_one_failing_event_of_several_loses_only_itself(workspace: Workspace) -> None:
    workspace.gateway.write_sync(_setup)
    before = workspace.gateway.read_sync(_counts)
    workspace.gateway.write_sync(lambda db: db.execute(
        "CREATE TEMP TRIGGER fail_contact BEFORE INSERT ON main.outbox WHEN "
        "(SELECT wa_id FROM main.contacts c JOIN main.messages m ON m.contact_id = c.id WHERE m.id = NEW.message_id)"
        " = '995555770002' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    [row] = await _process(workspace, _delivery(1, 2, 3))
    assert (row["state"], row["events"], row["error"]) == (
        "failed", 3, "event 1 (whatsapp): could not be stored (IntegrityError)")
    stored = workspace.gateway.read_sync(lambda db: sorted(r[0] for r in db.execute(
        "SELECT c.wa_id FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.direction = 'in'")))
    assert stored == ["995555770001", "995555770003"]
    after = workspace.gateway.read_sync(_counts)
    assert after["contacts"] - before["contacts"] == 2
    assert after["seen_events"] - before["seen_events"] == 2
    assert after["outbox"] - before["outbox"] == 2


async def test_the_good_deliveries_of_a_chunk_with_a_failing_one_are_stored_once(workspace: Workspace) -> None:
    workspace.gateway.write_sync(_setup)
    before = workspace.gateway.read_sync(_counts)
    workspace.gateway.write_sync(lambda db: db.execute(
        "CREATE TEMP TRIGGER fail_reply BEFORE INSERT ON main.outbox WHEN "
        "(SELECT wa_id FROM main.contacts c JOIN main.messages m ON m.contact_id = c.id WHERE m.id = NEW.message_id)"
        " = '995555770002' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    rows = await _process(workspace, _delivery(1), _delivery(2), _delivery(3))  # one chunk
    assert [(r["state"], r["error"]) for r in rows] == [
        ("processed", None), ("failed", "event 0 (whatsapp): could not be stored (IntegrityError)"),
        ("processed", None)]
    after = workspace.gateway.read_sync(_counts)
    assert {table: after[table] - before[table] for table in TABLES} == {
        "contacts": 2, "conversations": 2, "messages": 4, "outbox": 2, "flow_runs": 2, "flow_step_events": 4,
        "events": 10, "seen_events": 2, "webhook_journal_contacts": 2}
    replies = workspace.gateway.read_sync(lambda db: sorted(r[0] for r in db.execute(
        "SELECT c.wa_id FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE m.direction = 'out'")))
    assert replies == ["995555770001", "995555770003"]


async def test_a_delivery_whose_row_cannot_be_marked_leaves_nothing(workspace: Workspace) -> None:
    workspace.gateway.write_sync(_setup)
    before = workspace.gateway.read_sync(_counts)
    workspace.gateway.write_sync(lambda db: db.execute(
        "CREATE TEMP TRIGGER fail_finish BEFORE UPDATE OF state ON main.webhook_journal "
        "WHEN NEW.state = 'processed' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    rows = await _process(workspace, _delivery(1), _delivery(2, 3))
    assert [(r["state"], r["error"]) for r in rows] == [
        ("failed", "the delivery could not be applied (IntegrityError)")] * 2
    assert workspace.gateway.read_sync(_counts) == before
