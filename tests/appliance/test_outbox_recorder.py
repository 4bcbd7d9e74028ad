"""The sender's group commit (appliance/outbox/recorder.py) on a real workspace: the Recorder
commits many outcomes together, one that fails rolls back alone, and sends recorded together
write exactly what ``outbox.store.mark_sent`` writes one by one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from appliance.inbox.store import advance_status
from appliance.outbox import store as outbox
from appliance.outbox.recorder import Recorder, _Item, _run_each
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now
from tests.appliance.api_helpers import rows
from tests.appliance.outbox_helpers import connect, hours_ago, make_conversation, queue


def _note(db, text: str) -> int:  # noqa: ANN001 - a store function, as the gateway calls it
    if text == "bad":
        db.conn.execute("INSERT INTO bulk_notes (text) VALUES (NULL)")  # NOT NULL: fails alone
    return int(db.conn.execute("INSERT INTO bulk_notes (text) VALUES (?)", [text]).lastrowid)


async def test_the_recorder_commits_together_and_a_failing_write_rolls_back_alone(
    workspace: Workspace,
) -> None:
    gateway = workspace.gateway
    gateway.write_sync(lambda db: db.conn.execute(
        "CREATE TABLE IF NOT EXISTS bulk_notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"))
    commits: list[int] = []
    gateway.on_commit.append(lambda: commits.append(1))
    recorder = Recorder(gateway)
    try:
        outcomes = await asyncio.gather(*(recorder.write(_note, text) for text in
                                          ["a", "b", "bad", "c", *[f"n{i}" for i in range(40)]]),
                                        return_exceptions=True)
    finally:
        gateway.on_commit.clear()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and "NOT NULL" in str(failed[0])
    stored = [r["text"] for r in rows(workspace, "SELECT text FROM bulk_notes ORDER BY id")]
    assert stored == ["a", "b", "c", *[f"n{i}" for i in range(40)]]
    # The first write goes at once; everything queued behind it shares the next commit.
    assert len(commits) <= 3 < len(outcomes)
    assert json.dumps(sorted(o for o in outcomes if isinstance(o, int))) == json.dumps(
        sorted(r["id"] for r in rows(workspace, "SELECT id FROM bulk_notes")))


_COMPARED = ("status", "messaging_type", "tag", "sent_at", "updated_at", "error_code")


def _recorded(workspace: Workspace, message_id: int) -> tuple[Any, ...]:
    row = rows(workspace, f"SELECT {', '.join(_COMPARED)} FROM messages WHERE id = ?", [message_id])[0]
    updated = rows(workspace, "SELECT count(*) AS n FROM events WHERE type = 'message.updated' AND message_id = ?",
                   [message_id])[0]["n"]
    left = rows(workspace, "SELECT count(*) AS n FROM outbox WHERE message_id = ?", [message_id])[0]["n"]
    return (*(row[c] for c in _COMPARED), updated, left)


def _claimed_sends(workspace: Workspace, prefix: str, count: int) -> tuple[list[int], dict[int, int]]:
    """``count`` messages queued to as many new WhatsApp contacts and claimed: their message
    ids, and each one's outbox id."""
    channel_id = connect(workspace, "whatsapp")
    ids = [queue(workspace, make_conversation(workspace, channel_id, f"{prefix}{n}", wa_id=f"{prefix}{n}",
                                              last_inbound_at=hours_ago(1))) for n in range(count)]
    claimed = {r["message_id"]: r["outbox_id"] for r in workspace.gateway.write_sync(
        lambda db: outbox.claim_due(db, iso_now(), 10))}
    return ids, claimed


def test_sends_recorded_together_write_what_mark_sent_writes_one_by_one(workspace: Workspace) -> None:
    ids, claimed = _claimed_sends(workspace, "99555000020", 6)
    now = iso_now()
    # A status that overtook the answer: the message is already delivered (stays so, gets its id).
    for early in (ids[2], ids[5]):
        workspace.gateway.write_sync(lambda db, m=early: advance_status(db, m, "delivered", now))
    calls = [((claimed[m], m, [f"wamid.{n}"] if n % 3 else [], now),
              {"messaging_type": "RESPONSE" if n % 3 == 1 else None, "tag": None}) for n, m in enumerate(ids)]
    for args, kwargs in calls[:3]:  # one by one
        workspace.gateway.write_sync(lambda db, a=args, k=kwargs: outbox.mark_sent(db, *a, **k))
    outcomes = workspace.gateway.write_sync(
        _run_each, [_Item(outbox.mark_sent, args, kwargs, sent=True) for args, kwargs in calls[3:]])  # together
    assert outcomes == [(True, None)] * 3
    for alone, together in zip(ids[:3], ids[3:], strict=True):
        assert _recorded(workspace, alone) == _recorded(workspace, together)
    assert [_recorded(workspace, m)[0] for m in ids] == ["sent", "sent", "delivered"] * 2
    assert [r["external_id"] for r in rows(workspace, "SELECT external_id FROM messages ORDER BY id")] == [
        None, "wamid.1", "wamid.2", None, "wamid.4", "wamid.5"]


def test_a_send_that_cannot_be_recorded_together_fails_alone(workspace: Workspace) -> None:
    ids, claimed = _claimed_sends(workspace, "99555000030", 3)
    now = iso_now()
    wamids = ["wamid.a", "wamid.a", "wamid.b"]  # the second clashes with the first (unique per channel)
    outcomes = workspace.gateway.write_sync(_run_each, [
        _Item(outbox.mark_sent, (claimed[m], m, [w], now), {}, sent=True) for m, w in zip(ids, wamids, strict=True)])
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert "UNIQUE" in str(outcomes[1][1])
    recorded = rows(workspace, "SELECT status, external_id FROM messages ORDER BY id")
    assert [(r["status"], r["external_id"]) for r in recorded] == [
        ("sent", "wamid.a"), ("queued", None), ("sent", "wamid.b")]
    assert [r["message_id"] for r in rows(workspace, "SELECT message_id FROM outbox")] == [ids[1]]


class _Sender:
    """What a Recorder hands its claims to (the NextClaims protocol the real Sender keeps)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.started: list[list[int]] = []
        self.woken = 0

    def free_slots(self) -> int:
        return self.slots

    def claim_now(self) -> str:
        return iso_now()

    def start_claimed(self, rows: list[dict[str, Any]]) -> None:
        self.started.append([row["message_id"] for row in rows])

    def wake(self) -> None:
        self.woken += 1


async def test_a_recorded_send_claims_what_is_due_next_in_its_conversation(workspace: Workspace) -> None:
    channel_id = connect(workspace, "whatsapp")
    conversation = make_conversation(workspace, channel_id, "995550000401", wa_id="995550000401",
                                     last_inbound_at=hours_ago(1))
    first, second, third = (queue(workspace, conversation, text) for text in ("one", "two", "three"))
    [claimed] = workspace.gateway.write_sync(lambda db: outbox.claim_due(db, iso_now(), 10))
    assert claimed["message_id"] == first
    sender = _Sender(slots=3)
    recorder = Recorder(workspace.gateway, next_claims=sender)
    await recorder.record_sent(claimed["outbox_id"], first, ["wamid.1"], iso_now(), conversation_id=conversation)
    assert sender.started == [[second]]  # the next one only: one at a time per conversation, in order
    assert sender.woken == 0  # no claim round needed
    states = {r["message_id"]: r["state"] for r in rows(workspace, "SELECT message_id, state FROM outbox")}
    assert states == {second: "sending", third: "queued"}


async def test_a_recorded_send_without_a_conversation_claims_nothing(workspace: Workspace) -> None:
    channel_id = connect(workspace, "whatsapp")
    conversation = make_conversation(workspace, channel_id, "995550000402", wa_id="995550000402",
                                     last_inbound_at=hours_ago(1))
    first, second = queue(workspace, conversation, "one"), queue(workspace, conversation, "two")
    [claimed] = workspace.gateway.write_sync(lambda db: outbox.claim_due(db, iso_now(), 10))
    sender = _Sender(slots=5)
    await Recorder(workspace.gateway, next_claims=sender).record_sent(claimed["outbox_id"], first, [], iso_now())
    assert (sender.started, sender.woken) == ([], 0)
    assert [(r["message_id"], r["state"]) for r in rows(workspace, "SELECT message_id, state FROM outbox")] == [
        (second, "queued")]
